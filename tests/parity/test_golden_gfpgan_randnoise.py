"""golden_gfpgan_randnoise.npz: torch.manual_seed(seed) then randomize_noise=True draws, in layer order.

Our noise comes from a torch.Generator seeded the same way; this pins that mechanism (and the draw order
and shapes) against the original. The network input is golden_gfpgan.npz's ``input``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.enhance.loaders import load_gfpgan
from sadtalker.weights import ModelStore


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_golden("enhancers", "golden_gfpgan_randnoise.npz")


@pytest.fixture(scope="module")
def net(weights_enhancers):
    torch.set_num_threads(2)
    return load_gfpgan(ModelStore(weights_enhancers))


def test_drawn_noise_maps(net, golden):
    gen = torch.Generator().manual_seed(int(golden["seed"]))
    maps = net.draw_noise(1, gen)
    assert len(maps) == len([k for k in golden if k.startswith("noise_")])
    for j, m in enumerate(maps):
        np.testing.assert_array_equal(m.numpy(), golden[f"noise_{j}"])


def test_output(net, golden):
    x = torch.from_numpy(load_golden("enhancers", "golden_gfpgan.npz")["input"])
    with torch.inference_mode():
        out, _ = net(x, randomize_noise=True, generator=torch.Generator().manual_seed(int(golden["seed"])))
    err = np.abs(out.numpy().astype(np.float64) - golden["output"])
    assert err.max() <= 1e-4 and err.mean() <= 1e-5, (err.max(), err.mean())

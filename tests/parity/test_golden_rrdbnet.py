"""Parity of our RRDBNet x2plus with golden_rrdbnet_x2.npz (basicsr 1.4.2, filled weights)."""

from __future__ import annotations

import numpy as np
import torch

from reference_data import load_golden
from sadtalker.enhance.loaders import load_rrdbnet
from sadtalker.weights import ModelStore


def test_input_scaling():
    g = load_golden("enhancers", "golden_rrdbnet_x2.npz")
    ours = (g["input_rgb_u8"].astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(ours, g["input"], rtol=0, atol=1e-7)


def test_output(weights_enhancers):
    g = load_golden("enhancers", "golden_rrdbnet_x2.npz")
    torch.set_num_threads(2)
    net = load_rrdbnet(ModelStore(weights_enhancers))
    with torch.inference_mode():
        out = net(torch.from_numpy(g["input"])).numpy()
    assert out.shape == g["output"].shape
    assert np.abs(out.astype(np.float64) - g["output"]).max() <= 1e-4

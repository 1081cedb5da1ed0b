"""Parity of our tiled Real-ESRGAN x2 upsampler with golden_realesrgan_tiled.npz (RealESRGANer 0.3.0).

tile / tile_pad / pre_pad are read from the golden; the ``untiled_*`` outputs use tile 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.enhance.loaders import load_rrdbnet
from sadtalker.enhance.upsampler import TiledUpsampler
from sadtalker.weights import ModelStore


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_golden("enhancers", "golden_realesrgan_tiled.npz")


@pytest.fixture(scope="module")
def results(golden, weights_enhancers) -> dict:
    torch.set_num_threads(2)
    net = load_rrdbnet(ModelStore(weights_enhancers))
    img = golden["input_bgr_u8"]
    out = {}
    for name, tile in (("tiled", int(golden["tile"])), ("untiled", 0)):
        up = TiledUpsampler(net, scale=2, tile=tile, tile_pad=int(golden["tile_pad"]), pre_pad=int(golden["pre_pad"]))
        out[f"{name}_raw_rgb"] = up.raw(img[:, :, ::-1].astype(np.float32) / np.float32(255.0)).numpy()
        out[f"{name}_enhance_bgr_u8"] = up.enhance(img)
    return out


@pytest.mark.parametrize("name", ["tiled_raw_rgb", "untiled_raw_rgb"])
def test_raw(results, golden, name):
    assert results[name].shape == golden[name].shape
    assert np.abs(results[name].astype(np.float64) - golden[name]).max() <= 1e-4


@pytest.mark.parametrize("name", ["tiled_enhance_bgr_u8", "untiled_enhance_bgr_u8"])
def test_enhance_u8(results, golden, name):
    ours, ref = results[name], golden[name]
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3


def test_tiling_matters(golden):
    """The golden's tiled and untiled outputs differ (seams), so the tiled test pins the tile maths."""
    assert np.abs(golden["tiled_raw_rgb"] - golden["untiled_raw_rgb"]).max() > 1e-4

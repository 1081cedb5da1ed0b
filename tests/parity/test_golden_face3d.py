"""Parity: 5-point alignment and net_recon of the original CropAndExtract (golden_face3d.npz).

Inputs from the golden: the 256 crop, the landmarks detected on it and the 3D template. Exact for
aligned_224 / net_input, 1e-9 relative for the float64 transform, 1e-4 absolute for coefficients.
The network outputs are checked with both official checkpoint layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.face.align import LM3D_STD, align_image, flip_y, network_input
from sadtalker.face.reconstruct import coeff_3dmm_from
from sadtalker.nets.face_recon import COEFF_SLICES, load_face_recon
from sadtalker.weights import ModelStore

GOLDEN = "golden_face3d.npz"
COEFF_TOL = 1e-4
NET_OUTPUTS = ["coeffs_257", "full_3dmm", "coeff_3dmm"] + [f"coeff_{name}" for name in COEFF_SLICES]

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("sadtalker", GOLDEN)


@pytest.fixture(scope="module")
def alignment(golden):
    crop = golden["crop_256"]
    return align_image(crop, flip_y(golden["lm68_crop"], crop.shape[0]), golden["lm3d_std_f64"])


def test_lm68_crop_yflip(golden) -> None:
    ours = flip_y(golden["lm68_crop"], golden["crop_256"].shape[0])
    assert ours.dtype == golden["lm68_crop_yflip"].dtype
    np.testing.assert_array_equal(ours, golden["lm68_crop_yflip"])


def test_lm3d_std_f64(golden) -> None:
    """Our built-in template is the one the original loads from BFM's similarity_Lm3D_all.mat."""
    np.testing.assert_allclose(LM3D_STD, golden["lm3d_std_f64"], rtol=1e-9, atol=0)


def test_trans_params_f64(golden, alignment) -> None:
    np.testing.assert_allclose(alignment.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)


def test_trans_params_with_builtin_template(golden) -> None:
    crop = golden["crop_256"]
    ours = align_image(crop, flip_y(golden["lm68_crop"], crop.shape[0]))
    np.testing.assert_allclose(ours.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)


def test_aligned_224(golden, alignment) -> None:
    assert alignment.aligned.shape == golden["aligned_224"].shape
    diff = np.abs(alignment.aligned.astype(int) - golden["aligned_224"].astype(int))
    assert diff.max() == 0, f"{int((diff > 0).sum())} pixels differ"


def test_lm68_aligned(golden, alignment) -> None:
    # stored as float32 of the original's float64 values
    np.testing.assert_allclose(alignment.landmarks.astype(np.float32), golden["lm68_aligned"], rtol=1e-6, atol=1e-5)


def test_net_input(golden, alignment) -> None:
    ours = network_input(alignment.aligned)
    assert ours.dtype == np.float32 and ours.shape == golden["net_input"].shape
    np.testing.assert_array_equal(ours, golden["net_input"])


_cache: dict[str, np.ndarray] = {}


def _coeffs(weights_dir, golden) -> np.ndarray:
    key = str(weights_dir)
    if key not in _cache:
        net = load_face_recon(ModelStore(weights_dir), 256)
        with torch.inference_mode():
            _cache[key] = net(torch.from_numpy(golden["net_input"])).numpy()
    return _cache[key]


@pytest.mark.parametrize("key", NET_OUTPUTS)
def test_net_output(golden, weights_any_layout, key: str) -> None:
    full = _coeffs(weights_any_layout, golden)
    if key in ("coeffs_257", "full_3dmm"):
        ours = full
    elif key == "coeff_3dmm":
        ours = coeff_3dmm_from(full, golden["trans_params_f64"][None])
    else:
        ours = full[:, COEFF_SLICES[key.removeprefix("coeff_")]]
    expected = golden[key]
    assert ours.shape == expected.shape and ours.dtype == np.float32
    err = np.abs(ours.astype(np.float64) - expected)
    assert err.max() <= COEFF_TOL, f"{key}: max abs {err.max():.3g}, mean {err.mean():.3g}"

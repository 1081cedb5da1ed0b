"""Parity: 5-point alignment and net_recon on the ``--size 512`` crop (golden_face3d_512.npz).

Inputs from the golden: the crop named by ``size`` (``crop_<size>``), the landmarks detected on it and the
3D template. Exact for the y-flip, aligned_224 and net_input; 1e-9 relative for the float64 transform
(whose W, H and s, tx, ty are in the crop's pixel units); 1e-4 absolute for the coefficients. The network is
loaded for the golden's size from a store that only holds that size's bundle, and the coefficients are
also checked through ``face_coefficients``, the function the Preprocess stage calls.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.face.align import LM3D_STD, align_image, flip_y, network_input
from sadtalker.face.reconstruct import coeff_3dmm_from, face_coefficients
from sadtalker.nets.face_recon import COEFF_SLICES, load_face_recon
from sadtalker.weights import ModelStore

GOLDEN = "golden_face3d_512.npz"
COEFF_TOL = 1e-4
NET_OUTPUTS = ["coeffs_257", "full_3dmm", "coeff_3dmm"] + [f"coeff_{name}" for name in COEFF_SLICES]

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("sadtalker", GOLDEN)


def _crop(golden: dict[str, np.ndarray]) -> np.ndarray:
    size = int(golden["size"])
    crop = golden[f"crop_{size}"]
    assert crop.shape == (size, size, 3), f"crop_{size} has shape {crop.shape}"
    return crop


@pytest.fixture(scope="module")
def alignment(golden):
    crop = _crop(golden)
    return align_image(crop, flip_y(golden["lm68_crop"], crop.shape[0]), golden["lm3d_std_f64"])


def test_file_holds_every_checked_output(golden) -> None:
    inputs = {"size", f"crop_{int(golden['size'])}", "lm68_crop", "lm3d_std_f64"}
    checked = {"lm68_crop_yflip", "trans_params_f64", "aligned_224", "lm68_aligned", "net_input", *NET_OUTPUTS}
    assert set(golden) - inputs == checked


def test_lm68_crop_yflip(golden) -> None:
    ours = flip_y(golden["lm68_crop"], _crop(golden).shape[0])
    assert ours.dtype == golden["lm68_crop_yflip"].dtype
    np.testing.assert_array_equal(ours, golden["lm68_crop_yflip"])


def test_lm3d_std_f64(golden) -> None:
    np.testing.assert_allclose(LM3D_STD, golden["lm3d_std_f64"], rtol=1e-9, atol=0)


def test_trans_params_f64(golden, alignment) -> None:
    np.testing.assert_allclose(alignment.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)


def test_trans_params_with_builtin_template(golden) -> None:
    crop = _crop(golden)
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


def _net(weights_dir, golden):
    return load_face_recon(ModelStore(weights_dir), int(golden["size"]))


def _coeffs(weights_dir, golden) -> np.ndarray:
    key = str(weights_dir)
    if key not in _cache:
        with torch.inference_mode():
            _cache[key] = _net(weights_dir, golden)(torch.from_numpy(golden["net_input"])).numpy()
    return _cache[key]


def _check(ours: np.ndarray, expected: np.ndarray, key: str) -> None:
    assert ours.shape == expected.shape and ours.dtype == np.float32, f"{key}: {ours.shape} {ours.dtype}"
    err = np.abs(ours.astype(np.float64) - expected)
    print(f"{key}: max {err.max():.3g} mean {err.mean():.3g}")
    assert err.max() <= COEFF_TOL, f"{key}: max abs {err.max():.3g}, mean {err.mean():.3g}"


@pytest.mark.parametrize("key", NET_OUTPUTS)
def test_net_output(golden, weights_512, key: str) -> None:
    full = _coeffs(weights_512, golden)
    if key in ("coeffs_257", "full_3dmm"):
        ours = full
    elif key == "coeff_3dmm":
        ours = coeff_3dmm_from(full, golden["trans_params_f64"][None])
    else:
        ours = full[:, COEFF_SLICES[key.removeprefix("coeff_")]]
    _check(ours, golden[key], key)


def test_stage_coefficients(golden, weights_512) -> None:
    """Crop + its landmarks -> coefficients through the Preprocess stage's function, crop numbers included."""
    result = face_coefficients(_net(weights_512, golden), _crop(golden), golden["lm68_crop"])
    np.testing.assert_allclose(result.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)
    _check(result.full_3dmm, golden["full_3dmm"], "full_3dmm")
    _check(result.coeff_3dmm, golden["coeff_3dmm"], "coeff_3dmm")

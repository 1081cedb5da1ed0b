"""Parity: 5-point alignment and net_recon of the original CropAndExtract, at every size the kit has
(golden_face3d.npz: the 256 crop, golden_face3d_512.npz: ``--size 512``).

Inputs from the golden: the crop named by its size (``size`` where the file stores it, else the ``crop_<size>``
it holds), the landmarks detected on it and the 3D template. Exact for the y-flip, aligned_224 and net_input;
1e-9 relative for the float64 transform (W, H and s, tx, ty in the crop's pixel units); 1e-4 absolute for the
coefficients (kit README, both tables). The network is loaded for the golden's size: the 256 golden with both
official checkpoint layouts, the 512 one from a store that only holds the 512 bundle. The coefficients are also
checked through ``face_coefficients``, the function the Preprocess stage calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sadtalker.face.align import LM3D_STD, align_image, flip_y, network_input
from sadtalker.face.reconstruct import coeff_3dmm_from, face_coefficients
from sadtalker.nets.face_recon import COEFF_SLICES, FaceReconNet, load_face_recon
from sadtalker.weights import ModelStore

GOLDENS = {  # golden file -> the weight stores (fixtures) its network outputs are checked with
    "golden_face3d.npz": ("weights_256", "weights_pth"),
    "golden_face3d_512.npz": ("weights_512",),
}
COEFF_TOL = 1e-4
NET_OUTPUTS = ["coeffs_257", "full_3dmm", "coeff_3dmm"] + [f"coeff_{name}" for name in COEFF_SLICES]

per_golden = pytest.mark.parametrize("golden", list(GOLDENS), indirect=True)
per_store = pytest.mark.parametrize(
    ("golden", "weights"), [(g, w) for g, stores in GOLDENS.items() for w in stores], indirect=True
)

torch.set_num_threads(2)


def _size(golden) -> int:
    if "size" in golden:
        return int(golden["size"])
    (key,) = [k for k in golden if k.startswith("crop_") and k[5:].isdigit()]
    return int(key[5:])


def _crop(golden) -> np.ndarray:
    size = _size(golden)
    crop = golden[f"crop_{size}"]
    assert crop.shape == (size, size, 3), f"crop_{size} has shape {crop.shape}"
    return crop


_alignments: dict = {}


def _alignment(golden):
    if golden.name not in _alignments:
        crop = _crop(golden)
        _alignments[golden.name] = align_image(crop, flip_y(golden["lm68_crop"], crop.shape[0]), golden["lm3d_std_f64"])
    return _alignments[golden.name]


@per_golden
def test_file_holds_every_checked_output(golden) -> None:
    """Nothing stored goes unchecked: the file's outputs are exactly the ones this module compares."""
    inputs = {"size", f"crop_{_size(golden)}", "lm68_crop", "lm3d_std_f64"}
    checked = {"lm68_crop_yflip", "trans_params_f64", "aligned_224", "lm68_aligned", "net_input", *NET_OUTPUTS}
    assert set(golden) - inputs == checked


@per_golden
def test_lm68_crop_yflip(golden) -> None:
    ours = flip_y(golden["lm68_crop"], _crop(golden).shape[0])
    assert ours.dtype == golden["lm68_crop_yflip"].dtype
    np.testing.assert_array_equal(ours, golden["lm68_crop_yflip"])


@per_golden
def test_lm3d_std_f64(golden) -> None:
    """Our built-in template is the one the original loads from BFM's similarity_Lm3D_all.mat."""
    np.testing.assert_allclose(LM3D_STD, golden["lm3d_std_f64"], rtol=1e-9, atol=0)


@per_golden
def test_trans_params_f64(golden) -> None:
    np.testing.assert_allclose(_alignment(golden).trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)


@per_golden
def test_trans_params_with_builtin_template(golden) -> None:
    crop = _crop(golden)
    ours = align_image(crop, flip_y(golden["lm68_crop"], crop.shape[0]))
    np.testing.assert_allclose(ours.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)


@per_golden
def test_aligned_224(golden) -> None:
    aligned = _alignment(golden).aligned
    assert aligned.shape == golden["aligned_224"].shape
    diff = np.abs(aligned.astype(int) - golden["aligned_224"].astype(int))
    assert diff.max() == 0, f"{int((diff > 0).sum())} pixels differ"


@per_golden
def test_lm68_aligned(golden) -> None:
    # stored as float32 of the original's float64 values
    ours = _alignment(golden).landmarks.astype(np.float32)
    np.testing.assert_allclose(ours, golden["lm68_aligned"], rtol=1e-6, atol=1e-5)


@per_golden
def test_net_input(golden) -> None:
    ours = network_input(_alignment(golden).aligned)
    assert ours.dtype == np.float32 and ours.shape == golden["net_input"].shape
    np.testing.assert_array_equal(ours, golden["net_input"])


_nets: dict[tuple[str, int], FaceReconNet] = {}
_coeffs: dict[tuple[str, str], np.ndarray] = {}


def _net(weights: Path, golden) -> FaceReconNet:
    key = (str(weights), _size(golden))
    if key not in _nets:
        _nets[key] = load_face_recon(ModelStore(weights), _size(golden))
    return _nets[key]


def _full(weights: Path, golden) -> np.ndarray:
    key = (str(weights), golden.name)
    if key not in _coeffs:
        with torch.inference_mode():
            _coeffs[key] = _net(weights, golden)(torch.from_numpy(golden["net_input"])).numpy()
    return _coeffs[key]


def _check(ours: np.ndarray, expected: np.ndarray, key: str) -> None:
    assert ours.shape == expected.shape and ours.dtype == np.float32, f"{key}: {ours.shape} {ours.dtype}"
    err = np.abs(ours.astype(np.float64) - expected)
    print(f"{key}: max {err.max():.3g} mean {err.mean():.3g}")
    assert err.max() <= COEFF_TOL, f"{key}: max abs {err.max():.3g}, mean {err.mean():.3g}"


@pytest.mark.parametrize("key", NET_OUTPUTS)
@per_store
def test_net_output(golden, weights, key: str) -> None:
    full = _full(weights, golden)
    if key in ("coeffs_257", "full_3dmm"):
        ours = full
    elif key == "coeff_3dmm":
        ours = coeff_3dmm_from(full, golden["trans_params_f64"][None])
    else:
        ours = full[:, COEFF_SLICES[key.removeprefix("coeff_")]]
    _check(ours, golden[key], key)


@per_store
def test_stage_coefficients(golden, weights) -> None:
    """Crop + its landmarks -> coefficients through the Preprocess stage's function, crop numbers included."""
    result = face_coefficients(_net(weights, golden), _crop(golden), golden["lm68_crop"])
    np.testing.assert_allclose(result.trans_params, golden["trans_params_f64"], rtol=1e-9, atol=0)
    _check(result.full_3dmm, golden["full_3dmm"], "full_3dmm")
    _check(result.coeff_3dmm, golden["coeff_3dmm"], "coeff_3dmm")

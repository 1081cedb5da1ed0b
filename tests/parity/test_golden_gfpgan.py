"""Parity of our GFPGANv1Clean (v1.4) with golden_gfpgan.npz (original gfpgan 1.3.8, filled weights).

Every input comes from the golden: the aligned face, its landmarks/affine/template and the network input.
Tolerances are the kit README's recommendations for a CPU fp32 re-implementation.
"""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch

from reference_data import load_golden, reference_dir
from sadtalker.enhance.face_restore import FFHQ_TEMPLATE_512, align_face, face_to_tensor, tensor_to_face
from sadtalker.enhance.loaders import GFPGAN_MODEL, REALESRGAN_MODEL, load_gfpgan
from sadtalker.weights import ModelStore

GOLDEN = "golden_gfpgan.npz"


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_golden("enhancers", GOLDEN)


@pytest.fixture(scope="module")
def store(weights_enhancers) -> ModelStore:
    return ModelStore(weights_enhancers)


@pytest.fixture(scope="module")
def forward(golden, store) -> dict:
    """One forward pass with the stored noise buffers (randomize_noise=False) and the side outputs."""
    torch.set_num_threads(2)
    net = load_gfpgan(store)
    with torch.inference_mode():
        image, side, style = net(
            torch.from_numpy(golden["input"]), return_rgb=True, randomize_noise=False, return_style=True
        )
    out = {"output": image.numpy(), "style_code": style.numpy()}
    out.update({f"out_rgb_{i}": s.numpy() for i, s in enumerate(side)})
    out["restored_face_bgr_u8"] = tensor_to_face(image)
    return out


def _checksums() -> dict:
    return json.loads((reference_dir("enhancers") / "fill_checksums.json").read_text())


@pytest.mark.parametrize("model", [GFPGAN_MODEL, REALESRGAN_MODEL])
def test_weights_match_fill_checksums(store, model):
    """The synthetic checkpoints must be the kit's fill bit for bit before any output is compared."""
    expected = _checksums()[model]
    state = store.state_dict(model)
    assert sorted(state) == sorted(expected)
    bad = [
        k for k, t in state.items() if hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest() != expected[k]["sha256"]
    ]
    assert not bad, f"{len(bad)} tensors differ from the fill, first: {bad[:3]}"


def test_template_and_affine(golden):
    np.testing.assert_allclose(FFHQ_TEMPLATE_512, golden["ffhq_template5_xy_512"], rtol=0, atol=1e-5)
    M = cv2.estimateAffinePartial2D(golden["input_landmarks5_xy"], FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    np.testing.assert_allclose(M, golden["input_affine_2x3"], rtol=0, atol=1e-6)


def test_align_reproduces_crop(golden):
    """Warping the golden crop by the identity must leave it unchanged; warping a known image by the golden
    affine must match cv2 with facexlib's arguments (border value (135,133,132))."""
    crop, M = align_face(golden["input_face_bgr_u8"], golden["ffhq_template5_xy_512"])
    np.testing.assert_allclose(M, np.eye(2, 3), atol=1e-6)
    assert np.abs(crop.astype(int) - golden["input_face_bgr_u8"]).max() <= 1
    blank = np.zeros((64, 64, 3), np.uint8)
    crop, _ = align_face(blank, golden["input_landmarks5_xy"] + 500.0)  # face far outside the image
    assert (crop == np.array([135, 133, 132], np.uint8)).all()


def test_input_normalisation(golden):
    ours = face_to_tensor(golden["input_face_bgr_u8"]).numpy()
    np.testing.assert_allclose(ours, golden["input"], rtol=0, atol=1e-6)


def _check_float(ours: np.ndarray, ref: np.ndarray, atol: float, mean_atol: float | None = None) -> None:
    assert ours.shape == ref.shape
    err = np.abs(ours.astype(np.float64) - ref)
    assert err.max() <= atol, f"max abs error {err.max():.3g} > {atol:.3g}"
    if mean_atol is not None:
        assert err.mean() <= mean_atol, f"mean abs error {err.mean():.3g} > {mean_atol:.3g}"


def test_output(forward, golden):
    _check_float(forward["output"], golden["output"], 1e-4, 1e-5)


def test_style_code(forward, golden):
    _check_float(forward["style_code"], golden["style_code"], 1e-5)


@pytest.mark.parametrize("k", range(7))
def test_out_rgb(forward, golden, k):
    ref = golden[f"out_rgb_{k}"]
    _check_float(forward[f"out_rgb_{k}"], ref, 1e-4 * max(1.0, float(np.abs(ref).max())))


def test_restored_face_bgr_u8(forward, golden):
    ours, ref = forward["restored_face_bgr_u8"], golden["restored_face_bgr_u8"]
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1
    assert (diff > 0).mean() <= 1e-3

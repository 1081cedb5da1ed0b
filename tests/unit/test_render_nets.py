"""Renderer networks and motion preparation: spectral norm, strict loading, 512 input, pose ramps, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sadtalker.errors import CheckpointError, InvalidCoefficients
from sadtalker.nets.generator import OcclusionAwareSPADEGenerator
from sadtalker.nets.keypoint_detector import KPDetector
from sadtalker.nets.render_blocks import SpectralConv2d
from sadtalker.params import JobParams
from sadtalker.render.animate import build_renderer, source_image_float, to_ubyte
from sadtalker.render.reduced import REDUCED_GENERATOR, REDUCED_KP, write_reduced_weights
from sadtalker.render.semantics import camera_pose_sequence, prepare_coefficients, prepare_motion
from sadtalker.weights import ModelStore, load_strict


def test_spectral_conv_equals_torch_spectral_norm_in_eval_mode():
    torch.manual_seed(0)
    ref = nn.utils.spectral_norm(nn.Conv2d(6, 5, 3, padding=1))
    ref.train()
    for _ in range(3):  # a few power iterations so u, v are not the initial ones
        ref(torch.rand(1, 6, 8, 8))
    ref.eval()
    ours = SpectralConv2d(6, 5, 3, padding=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, 6, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    # loading new tensors invalidates the cached effective weight
    state = {k: torch.rand_like(v) if k == "weight_orig" else v for k, v in ref.state_dict().items()}
    ours.load_state_dict(state)
    ref.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_official_nets_refuse_reduced_weights(tmp_path):
    write_reduced_weights(tmp_path)
    store = ModelStore(tmp_path)
    from sadtalker.weights import locate_module, read_module

    state = read_module(locate_module(tmp_path, "kp_extractor"))
    with pytest.raises(CheckpointError, match="kp_extractor"):
        load_strict(KPDetector(), state, filename="x", module="kp_extractor")
    load_strict(KPDetector(REDUCED_KP), state, filename="x", module="kp_extractor")
    gen = read_module(locate_module(tmp_path, "generator"))
    load_strict(OcclusionAwareSPADEGenerator(REDUCED_GENERATOR), gen, filename="x", module="generator")
    assert store.profile == "reduced" and store.synthetic


def test_reduced_renderer_at_512(tmp_path):
    write_reduced_weights(tmp_path, sizes=(512,))
    renderer = build_renderer(ModelStore(tmp_path), 512, full_mode=False)
    coeffs = np.random.default_rng(0).normal(0, 0.3, (3, 70)).astype(np.float32)
    source = np.zeros(73, np.float32)
    inputs = prepare_motion(coeffs, source, JobParams.load(size=512))
    img = source_image_float(np.random.default_rng(1).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    state = renderer.prepare_source(img, inputs.source_window())
    assert state.features.feature_3d.shape[-2:] == (128, 128)
    frames = renderer.render_range(state, inputs, 1, 3, batch_size=2)
    assert frames.shape == (2, 512, 512, 3) and frames.dtype == np.float32
    assert 0 <= frames.min() and frames.max() <= 1 and frames.std() > 0.01


def test_to_ubyte_matches_skimage():
    from skimage import img_as_ubyte

    x = np.random.default_rng(2).random((4, 5, 3)).astype(np.float32)
    x[0, 0] = [0.0, 1.0, 0.5 / 255]
    np.testing.assert_array_equal(to_ubyte(x), img_as_ubyte(x))


def test_source_image_float_matches_skimage():
    from skimage import img_as_float32

    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    np.testing.assert_array_equal(source_image_float(u8), img_as_float32(u8))


@pytest.mark.parametrize(
    "values,frames,expected",
    [
        ([5], 4, [5, 5, 5, 5]),
        ([0, 30], 4, [0, 10, 20, 20]),
        ([0, 10, 0], 5, [0, 5, 10, 5, 5]),
        ([0, 0, 10], 3, [0, 5, 5]),  # an equal pair adds no ramp (the original divides by zero)
        ([-20, 20], 1, [-20]),  # one frame: the original divides by T - 1 = 0
    ],
)
def test_camera_pose_sequence(values, frames, expected):
    seq = camera_pose_sequence(values, frames)
    assert seq.dtype == np.float32 and seq.shape == (frames,)
    np.testing.assert_allclose(seq, expected, atol=1e-5)


def test_still_and_full_mode_coefficients():
    rng = np.random.default_rng(3)
    coeffs = rng.normal(size=(6, 70)).astype(np.float32)
    source = rng.normal(size=(1, 73)).astype(np.float32)
    gen, src = prepare_coefficients(coeffs, source, expression_scale=2.0, still=True, full_mode=True)
    assert gen.shape == (6, 73) and src.shape == (73,)
    np.testing.assert_array_equal(gen[:, :64], coeffs[:, :64] * np.float32(2.0))
    np.testing.assert_array_equal(gen[:, 64:], np.repeat(source[:, 64:], 6, axis=0))
    gen, src = prepare_coefficients(coeffs, source, expression_scale=1.0, still=False, full_mode=False)
    np.testing.assert_array_equal(gen, coeffs)
    assert src.shape == (70,)


@pytest.mark.parametrize(
    "coeffs",
    [np.zeros((5, 64), np.float32), np.zeros((0, 70), np.float32), np.full((3, 70), np.nan, np.float32)],
    ids=["width", "empty", "nan"],
)
def test_bad_coefficients(coeffs):
    with pytest.raises(InvalidCoefficients):
        prepare_coefficients(coeffs, np.zeros(73, np.float32), expression_scale=1.0, still=False, full_mode=False)

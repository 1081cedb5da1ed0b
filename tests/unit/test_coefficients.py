"""Blink sequences, reference-video tiling, smoothing and seeded coefficient generation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.coefficients import (
    BLINK_SHAPE,
    apply_ref_pose,
    blink_ratio,
    build_audio_models,
    generate_coefficients,
    load_audio_models,
    predict_expression,
    reference_sequence,
    smooth_pose,
    tile_to_length,
)
from sadtalker.errors import CheckpointError, InvalidCoefficients
from sadtalker.nets.audio2exp import Audio2Exp
from sadtalker.nets.audio2pose import Audio2Pose
from sadtalker.weights import ModelStore, load_strict

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def nets(weights_256):
    return load_audio_models(ModelStore(weights_256))


@pytest.fixture(scope="module")
def golden_inputs():
    g = load_golden("sadtalker", "golden_audio2pose.npz")
    return g["indiv_mels"][0, :, 0], g["ref"][0, 0]


# --- blinks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 20])
def test_no_blinks_in_short_clips(t):
    r = blink_ratio(t, random.Random(0))
    assert r.shape == (t, 1) and not r.any()


@pytest.mark.parametrize("seed", range(5))
def test_blinks_are_whole_and_spaced(seed):
    t = 400
    r = blink_ratio(t, random.Random(seed))[:, 0]
    assert r.dtype == np.float32
    starts = [i for i in range(t) if r[i] == 0.5 and (i == 0 or r[i - 1] == 0)]
    assert len(starts) >= 4
    prev_end = 0
    for s in starts:
        assert tuple(r[s : s + 5]) == pytest.approx(BLINK_SHAPE)
        assert 10 <= s - prev_end < 70  # gap drawn from range(10, min(T/2, 70))
        prev_end = s + 5
    assert np.count_nonzero(r) == 5 * len(starts)


def test_blinks_seeded():
    a = blink_ratio(300, random.Random(7))
    assert np.array_equal(a, blink_ratio(300, random.Random(7)))
    assert not np.array_equal(a, blink_ratio(300, random.Random(8)))


# --- reference sequences -----------------------------------------------------------------------------
def test_tile_whole_repeats_plus_remainder():
    seq = np.arange(3 * 2).reshape(3, 2)
    out = tile_to_length(seq, 8)
    assert out.shape == (8, 2)
    assert out[:, 0].tolist() == [0, 2, 4, 0, 2, 4, 0, 2]
    assert tile_to_length(seq, 2).tolist() == seq[:2].tolist()  # longer reference: cut


def test_reference_sequence_with_eyeblink_video():
    src = np.arange(70, dtype=np.float32)
    ref_video = np.random.default_rng(0).normal(size=(4, 70)).astype(np.float32)
    ref = reference_sequence(src, 10, ref_video)
    assert ref.shape == (10, 70)
    np.testing.assert_array_equal(ref[:, :64], ref_video[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1], :64])
    np.testing.assert_array_equal(ref[:, 64:], np.tile(src[64:], (10, 1)))  # pose stays the source's
    np.testing.assert_array_equal(reference_sequence(src, 3), np.tile(src, (3, 1)))


def test_apply_ref_pose_is_relative_to_first_reference_frame():
    coeffs = np.zeros((7, 70), dtype=np.float32)
    coeffs[:, 64:] = 1.0
    refpose = np.zeros((3, 70), dtype=np.float32)
    refpose[:, 64:] = np.array([[5.0], [6.0], [8.0]])
    out = apply_ref_pose(coeffs, refpose)
    assert out[:, 64].tolist() == [1, 2, 4, 1, 2, 4, 1]
    np.testing.assert_array_equal(out[:, :64], 0)
    assert coeffs[0, 64] == 1.0  # input untouched


@pytest.mark.parametrize("bad", [np.zeros((0, 70)), np.zeros((5, 12)), np.full((2, 70), np.nan), np.zeros(70)])
def test_bad_reference_arrays(bad):
    with pytest.raises(InvalidCoefficients):
        apply_ref_pose(np.zeros((4, 70), np.float32), bad)


def test_smoothing_window_for_short_clips():
    rng = np.random.default_rng(1)
    for t in (1, 2):
        x = rng.normal(size=(1, t, 6)).astype(np.float32)
        np.testing.assert_array_equal(smooth_pose(x), x)
    x = rng.normal(size=(1, 5, 6)).astype(np.float32)
    from scipy.signal import savgol_filter

    np.testing.assert_array_equal(smooth_pose(x), savgol_filter(x, 5, 2, axis=1))
    line = np.linspace(0, 1, 40, dtype=np.float32)[None, :, None].repeat(6, axis=2)
    np.testing.assert_allclose(smooth_pose(line), line, atol=1e-6)  # order 2 keeps a line


# --- networks and generation -------------------------------------------------------------------------
def test_loader_is_memoized(weights_256):
    assert load_audio_models(ModelStore(weights_256)) is load_audio_models(ModelStore(weights_256))


def test_strict_loading_names_the_problem(weights_256):
    state = ModelStore(weights_256).state_dict("audio2pose")
    state.pop("netD_motion.seq.3.bias")
    with pytest.raises(CheckpointError, match=r"netD_motion\.seq\.3\.bias"):
        load_strict(Audio2Pose(), state, filename="x.safetensors", module="audio2pose")
    exp_state = ModelStore(weights_256).state_dict("audio2exp")
    exp_state["mapping1.weight"] = exp_state["mapping1.weight"][:, :10]
    with pytest.raises(CheckpointError, match="mapping1.weight"):
        load_strict(Audio2Exp(), exp_state, filename="x.safetensors", module="audio2exp")


def test_seeded_generation_is_bit_for_bit(nets, golden_inputs):
    mels, src = golden_inputs
    a = generate_coefficients(nets, mels, src, pose_style=3, seed=42)
    b = generate_coefficients(nets, mels, src, pose_style=3, seed=42)
    c = generate_coefficients(nets, mels, src, pose_style=3, seed=43)
    assert a.coeffs.dtype == np.float32 and a.coeffs.shape == (75, 70)
    assert np.array_equal(a.coeffs, b.coeffs)
    assert not np.array_equal(a.coeffs[:, 64:], c.coeffs[:, 64:])
    assert len(a.noises) == 3  # 74 frames after the first: 32 + 32 + last 10 of a 32 window
    assert np.all(a.pose_motion[0] == 0)


def test_ref_eyeblink_zeroes_ratio_and_drives_expression(nets, golden_inputs):
    mels, src = golden_inputs
    ref_video = np.random.default_rng(2).normal(size=(30, 70)).astype(np.float32)
    res = generate_coefficients(nets, mels, src, seed=1, ref_eyeblink=ref_video)
    assert not res.ratio.any()
    ref = reference_sequence(src, 75, ref_video)
    want = predict_expression(nets.audio2exp, mels, ref, np.zeros((75, 1), np.float32))
    np.testing.assert_array_equal(res.exp, want)


def test_use_blink_off_zeroes_the_ratio_and_keeps_the_pose_draws(nets, golden_inputs):
    mels, src = golden_inputs[0][:40], golden_inputs[1]
    on = generate_coefficients(nets, mels, src, seed=7)
    off = generate_coefficients(nets, mels, src, seed=7, use_blink=False)
    assert on.ratio.any() and not off.ratio.any()
    want = predict_expression(nets.audio2exp, mels, reference_sequence(src, 40), np.zeros((40, 1), np.float32))
    np.testing.assert_array_equal(off.exp, want)
    np.testing.assert_array_equal(off.coeffs[:, 64:], on.coeffs[:, 64:])  # same pose latents either way


def test_ref_pose_adds_relative_motion(nets, golden_inputs):
    mels, src = golden_inputs
    ref_video = np.random.default_rng(3).normal(size=(20, 70)).astype(np.float32)
    plain = generate_coefficients(nets, mels, src, seed=5)
    posed = generate_coefficients(nets, mels, src, seed=5, ref_pose=ref_video)
    np.testing.assert_array_equal(posed.coeffs[:, :64], plain.coeffs[:, :64])
    delta = tile_to_length(ref_video[:, 64:70], 75) - ref_video[0, 64:70]
    np.testing.assert_allclose(posed.coeffs[:, 64:] - plain.coeffs[:, 64:], delta, atol=1e-5)


@pytest.mark.parametrize("t", [1, 2, 5, 33, 34])
def test_short_and_boundary_lengths(nets, golden_inputs, t):
    mels, src = golden_inputs
    res = generate_coefficients(nets, mels[:t], src, seed=9)
    assert res.coeffs.shape == (t, 70) and np.isfinite(res.coeffs).all()
    assert len(res.noises) == (t - 1) // 32 + (1 if (t - 1) % 32 else 0)


def test_injected_noise_must_cover_all_windows(nets, golden_inputs):
    mels, src = golden_inputs
    with pytest.raises(ValueError, match="noise"):
        generate_coefficients(nets, mels, src, blink=np.zeros((75, 1)), noise=[torch.zeros(1, 64)])


def test_bad_mel_windows(nets):
    with pytest.raises(InvalidCoefficients):
        generate_coefficients(nets, np.zeros((0, 80, 16), np.float32), np.zeros(70), seed=1)


def test_build_reads_old_pth_layout(weights_pth):
    m = build_audio_models(ModelStore(weights_pth))
    assert m.files == ("auido2exp_00300-model.pth", "auido2pose_00140-model.pth")

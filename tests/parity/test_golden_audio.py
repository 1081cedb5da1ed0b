"""Parity: golden_audio.npz (mel spectrogram, per-frame windows, frame counts, blink draws)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from reference_data import load_golden, reference_dir
from sadtalker.audio import compute_features, decode_audio, frame_count, mel_basis
from sadtalker.coefficients import blink_ratio

MEL_TOL = 1e-4  # kit README: float64 pipeline
HARNESS_BLINK_SEED = 1234  # kit README: the harness seeded Python's random with 1234


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("sadtalker", "golden_audio.npz")


@pytest.fixture(scope="module")
def features_3s(golden):
    return compute_features(golden["wav"])


@pytest.fixture(scope="module")
def features_8s():
    # The golden keeps only the 8 s clip's features: decode the kit's clip (16 kHz PCM, exact).
    path = reference_dir("sadtalker") / "speech_8s.wav"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    return compute_features(decode_audio(path, max_seconds=3600))


def _report(name: str, got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    print(f"{name}: max {diff.max():.3g} mean {diff.mean():.3g}")
    return float(diff.max()), float(diff.mean())


def test_mel_basis(golden):
    worst, _ = _report("mel_basis_f64", mel_basis(), golden["mel_basis_f64"])
    assert worst <= 1e-12


def test_num_frames(golden, features_3s):
    assert features_3s.num_frames == int(golden["num_frames"])
    assert frame_count(len(golden["wav"])) == int(golden["num_frames"])


def test_wav_len_used(golden, features_3s):
    assert len(features_3s.wav) == int(golden["wav_len_used"])


def test_mel(golden, features_3s):
    worst, _ = _report("mel", features_3s.mel.astype(np.float32), golden["mel"])
    assert worst <= MEL_TOL


def test_indiv_mels(golden, features_3s):
    want = golden["indiv_mels"]  # (1, T, 1, 80, 16)
    worst, _ = _report("indiv_mels", features_3s.indiv_mels[None, :, None], want)
    assert worst <= MEL_TOL


def test_num_frames_8s(golden, features_8s):
    assert features_8s.num_frames == int(golden["num_frames_8s"])


def test_mel_8s(golden, features_8s):
    worst, _ = _report("mel_8s", features_8s.mel.astype(np.float32), golden["mel_8s"])
    assert worst <= MEL_TOL


def test_indiv_mels_8s(golden, features_8s):
    worst, _ = _report("indiv_mels_8s", features_8s.indiv_mels, golden["indiv_mels_8s"])
    assert worst <= MEL_TOL


def test_decode_wav_matches_loader(golden):
    """A 16 kHz PCM wav decodes to exactly int16 / 32768, as librosa.load gives (the golden ``wav``)."""
    path = reference_dir("sadtalker") / "speech_3s.wav"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    wav = decode_audio(path, max_seconds=3600)
    assert wav.dtype == np.float32
    np.testing.assert_array_equal(wav[: len(golden["wav"])], golden["wav"])


def test_ratio_gt(golden):
    """The blink generator, seeded like the harness, reproduces the recorded draw."""
    want = golden["ratio_gt"]  # (1, T, 1)
    got = blink_ratio(want.shape[1], random.Random(HARNESS_BLINK_SEED))
    np.testing.assert_array_equal(got[None], want)

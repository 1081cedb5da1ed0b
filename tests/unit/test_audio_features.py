"""Mel features, frame rules and the AudioFeatures stage."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from reference_data import reference_dir
from sadtalker.audio import compute_features, fit_to_frames, frame_count, frame_windows, melspectrogram, window_starts
from sadtalker.errors import InvalidAudio, InvalidInput
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.audio_features import audio_features
from sadtalker.storage import LocalStorage


def _speech_bytes() -> bytes:
    return (reference_dir("sadtalker") / "speech_3s.wav").read_bytes()


def _wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


@pytest.mark.parametrize(("n", "frames"), [(0, 0), (639, 0), (640, 1), (48000, 75), (48639, 75), (48640, 76)])
def test_frame_count(n, frames):
    assert frame_count(n) == frames


def test_fit_to_frames_cuts_and_pads():
    x = np.arange(1000, dtype=np.float32)
    assert len(fit_to_frames(x, 1)) == 640
    padded = fit_to_frames(x, 2)
    assert len(padded) == 1280 and np.all(padded[1000:] == 0) and np.array_equal(padded[:1000], x)


def test_window_starts_follow_python_float_truncation():
    want = [int(80.0 * ((i - 2) / 25.0)) for i in range(3000)]
    assert window_starts(3000).tolist() == want
    assert want[:3] == [-6, -3, 0]


def test_frame_windows_clamp_at_both_ends():
    mel = np.arange(20 * 80, dtype=np.float64).reshape(20, 80)  # row r holds r*80 .. r*80+79
    win = frame_windows(mel, 8)
    assert win.shape == (8, 80, 16) and win.dtype == np.float32
    rows = win[:, 0, :] / 80  # the mel row index each window column came from
    assert rows[0].tolist() == [0] * 7 + list(range(1, 10))  # starts at -6: clamped to row 0
    assert rows[7].tolist() == list(range(16, 20)) + [19] * 12  # starts at 16, runs past the end: clamped


def test_mel_of_silence_is_the_floor():
    mel = melspectrogram(np.zeros(6400, dtype=np.float32))
    assert mel.shape == (33, 80)
    assert np.all(mel == -4.0)


def test_mel_shape_and_range_of_speech():
    with wave.open(str(reference_dir("sadtalker") / "speech_3s.wav")) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    f = compute_features(x[:47000])  # not a whole number of frames
    assert f.num_frames == 73 and len(f.wav) == 73 * 640
    assert f.mel.shape == (1 + 73 * 640 // 200, 80)
    assert f.mel.min() >= -4 and f.mel.max() <= 4 and f.mel.max() > 0


def test_sixty_seconds_frame_count(tmp_path):
    with wave.open(str(reference_dir("sadtalker") / "speech_3s.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    storage = LocalStorage(tmp_path)
    storage.put("inbox/long/speech.wav", _wav_bytes(np.tile(pcm, 20)))  # 20 x 3 s
    out = audio_features(storage, JobKeys("long"), "inbox/long/speech.wav", JobParams.load({}))
    assert out["num_frames"] == 1500
    z = storage.get_npz(JobKeys("long").audio)
    assert z["indiv_mels"].shape == (1500, 80, 16) and len(z["wav"]) == 1500 * 640


def test_stage_writes_the_contract(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put("inbox/j/speech.wav", _speech_bytes())
    job = JobKeys("j")
    out = audio_features(storage, job, "inbox/j/speech.wav", JobParams.load({}))
    assert out["num_frames"] == 75 and out["audio_key"] == job.audio
    z = storage.get_npz(job.audio)
    assert set(z) == {"wav", "indiv_mels", "num_frames"}
    assert z["wav"].dtype == np.float32 and z["wav"].shape == (48000,)
    assert z["indiv_mels"].dtype == np.float32 and z["indiv_mels"].shape == (75, 80, 16)
    assert z["num_frames"].dtype == np.int64 and int(z["num_frames"]) == 75


def test_stage_rejects_without_writing(tmp_path):
    storage = LocalStorage(tmp_path)
    job = JobKeys("bad")
    storage.put("inbox/bad/speech.wav", _speech_bytes())
    with pytest.raises(InvalidAudio, match="max_audio_seconds"):
        audio_features(storage, job, "inbox/bad/speech.wav", JobParams.load({"max_audio_seconds": 2.0}))
    storage.put("inbox/bad/tiny.wav", _wav_bytes(np.zeros(600)))
    with pytest.raises(InvalidAudio, match="at least one video frame"):
        audio_features(storage, job, "inbox/bad/tiny.wav", JobParams.load({}))
    storage.put("inbox/bad/empty.m4a", b"")
    with pytest.raises(InvalidAudio, match="empty"):
        audio_features(storage, job, "inbox/bad/empty.m4a", JobParams.load({}))
    with pytest.raises(InvalidInput):
        audio_features(storage, job, "inbox/bad/nothing.wav", JobParams.load({}))
    assert not storage.exists(job.audio)

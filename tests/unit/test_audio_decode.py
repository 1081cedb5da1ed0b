"""Speech decoding: formats, rates, channels, broken files, length limits."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from reference_data import reference_dir
from sadtalker.audio import decode as decode_mod
from sadtalker.audio import decode_audio
from sadtalker.errors import InvalidAudio


@pytest.fixture(scope="module")
def speech() -> Path:
    path = reference_dir("sadtalker") / "speech_3s.wav"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def speech_pcm(speech) -> np.ndarray:
    with wave.open(str(speech)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def ffmpeg(*args: str) -> None:
    subprocess.run([decode_mod.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def make(tmp_path: Path, name: str, *args: str, src: Path | None = None) -> Path:
    out = tmp_path / name
    ffmpeg(*(["-i", str(src)] if src else []), *args, str(out))
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_pcm16_wav_is_exact(speech, speech_pcm):
    wav = decode_audio(speech, max_seconds=300)
    assert wav.dtype == np.float32
    np.testing.assert_array_equal(wav, speech_pcm)


@pytest.mark.parametrize(("name", "args"), [
    ("stereo48k.wav", ["-ac", "2", "-ar", "48000", "-c:a", "pcm_s16le"]),
    ("mono8k.wav", ["-ac", "1", "-ar", "8000", "-c:a", "pcm_s16le"]),
])  # fmt: skip
def test_other_rates_and_channels_match_librosa(tmp_path, speech, name, args):
    """Channel averaging + soxr HQ resampling + the ceil length rule, as librosa.load(sr=16000)."""
    librosa = pytest.importorskip("librosa")
    path = make(tmp_path, name, *args, src=speech)
    got = decode_audio(path, max_seconds=300)
    want, sr = librosa.load(str(path), sr=16000)
    assert sr == 16000
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # same decoded samples, same resampler: bit-exact


@pytest.mark.parametrize(("name", "args", "min_corr"), [
    ("speech.flac", ["-c:a", "flac"], 1.0),
    ("speech.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"], 0.9),
    ("speech.ogg", ["-c:a", "libvorbis"], 0.9),
    ("speech.opus", ["-c:a", "libopus"], 0.9),
    ("speech.m4a", ["-c:a", "aac"], 0.9),
    ("speech.webm", ["-c:a", "libopus"], 0.9),
    ("speech44k.mp3", ["-ar", "44100", "-ac", "2", "-c:a", "libmp3lame"], 0.9),
])  # fmt: skip
def test_compressed_formats(tmp_path, speech, speech_pcm, name, args, min_corr):
    path = make(tmp_path, name, *args, src=speech)
    wav = decode_audio(path, max_seconds=300)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - len(speech_pcm)) <= 0.05 * 16000, len(wav)
    if min_corr == 1.0:
        np.testing.assert_array_equal(wav, speech_pcm)  # lossless
    else:
        assert _corr(wav, speech_pcm) >= min_corr


def test_video_with_sound_uses_its_audio(tmp_path, speech, speech_pcm):
    path = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=3", "-i", str(speech), "-c:v", "libx264", "-c:a", "aac",
           "-shortest", str(path))
    wav = decode_audio(path, max_seconds=300)
    assert _corr(wav, speech_pcm) >= 0.9


def test_video_without_audio(tmp_path):
    path = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=1", "-c:v", "libx264", str(path))
    with pytest.raises(InvalidAudio, match="no audio stream"):
        decode_audio(path, max_seconds=300)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(InvalidAudio, match="empty"):
        decode_audio(path, max_seconds=300)


def test_png_renamed_wav(tmp_path):
    path = tmp_path / "photo.wav"
    path.write_bytes((reference_dir("sadtalker") / "astronaut.png").read_bytes())
    with pytest.raises(InvalidAudio) as err:
        decode_audio(path, max_seconds=300)
    assert str(err.value)[0].islower() and "\n" not in str(err.value)


def test_truncated_mp3_decodes_what_is_there(tmp_path, speech, speech_pcm):
    full = make(tmp_path, "full.mp3", "-c:a", "libmp3lame", src=speech)
    data = full.read_bytes()
    half = tmp_path / "half.mp3"
    half.write_bytes(data[: len(data) // 2])
    wav = decode_audio(half, max_seconds=300)
    assert 0.3 * len(speech_pcm) < len(wav) < 0.7 * len(speech_pcm)
    assert _corr(wav, speech_pcm[: len(wav)]) >= 0.9


def test_mp3_cut_inside_its_header(tmp_path, speech):
    full = make(tmp_path, "full.mp3", "-c:a", "libmp3lame", src=speech)
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(full.read_bytes()[:200])
    with pytest.raises(InvalidAudio):
        decode_audio(stub, max_seconds=300)


def test_longer_than_allowed_small_limit(speech):
    with pytest.raises(InvalidAudio, match="max_audio_seconds"):
        decode_audio(speech, max_seconds=1.0)


def test_longer_than_allowed_default_limit(tmp_path):
    path = tmp_path / "long.wav"  # 301 s of silence at 8 kHz: 4.8 MB, made in well under a second
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "301", "-c:a", "pcm_s16le", str(path))
    with pytest.raises(InvalidAudio, match="301.0 s long"):
        decode_audio(path, max_seconds=300.0)


def test_length_checked_after_decoding_when_header_hides_it(monkeypatch, speech):
    """A container without a duration is still cut off: the decode is capped just past the limit."""
    monkeypatch.setattr(decode_mod, "probe", lambda p: decode_mod.AudioProbe(None, True, "pcm"))
    with pytest.raises(InvalidAudio, match="longer than"):
        decode_audio(speech, max_seconds=1.0)
    assert len(decode_audio(speech, max_seconds=3.0)) == 48000


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "2", "-c:a", "pcm_s16le", str(path))
    wav = decode_audio(path, max_seconds=300)
    assert len(wav) == 32000
    assert np.all(wav == 0)

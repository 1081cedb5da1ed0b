"""Speech decoding: any container/codec ffmpeg reads -> 16 kHz mono float32, as SadTalker's loader gives.

SadTalker loads with ``librosa.load(path, sr=16000)``: libsndfile decodes to float32 (int16 / 32768 for
PCM), channels are averaged, and other rates are resampled with soxr at "HQ" quality, then the length is
fixed to ``ceil(n * 16000 / sr)``. We reproduce that chain with one change of decoder: the ffmpeg binary
that imageio-ffmpeg ships decodes every format (wav, mp3, m4a/aac, flac, ogg/opus, webm, video files),
always at the file's own rate and channel count, into 32-bit float WAV on a pipe. Averaging and
resampling (python-soxr, the same library and quality librosa uses) are done here, so a 16 kHz PCM wav
decodes to exactly int16/32768 and a resampled file to what librosa gives for the same decoded samples.
Lossy codecs (mp3, aac, opus) may differ from libsndfile's decoders by their own decoder delay handling.

Limits: the duration ffmpeg reports is checked against ``max_audio_seconds`` before decoding, and the
decode itself is capped (``-t``) just past the limit, so a file that hides its length (no duration in
the header) is still never decoded in full. A truncated file decodes up to where its data ends (as a
player would); a file with no decodable audio samples is ``InvalidAudio``.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidAudio

SAMPLE_RATE = 16000
# ffmpeg's reported duration is rounded to 10 ms (and estimated from the bit rate for some mp3s):
# allow that much before rejecting on the header alone; the decoded length is checked exactly.
_DURATION_SLACK_S = 0.05
_PROBE_TIMEOUT_S = 60
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class AudioProbe:
    """What ffmpeg says about a file before decoding it."""

    duration: float | None  # seconds, None when the container does not say
    has_audio: bool
    audio_stream: str  # the "Audio: ..." description, for messages


_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_AUDIO_RE = re.compile(r"Stream #\d+:\d+[^\n]*?: Audio: ([^\n]*)")


def probe(path: Path) -> AudioProbe:
    """Read the container header with ``ffmpeg -i`` (no output: ffmpeg exits 1 after printing the info)."""
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise InvalidAudio("the speech file could not be read: inspecting it took too long") from None
    info = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in info:
        raise InvalidAudio(f"the speech file is not a readable audio or video file ({_last_line(info)})")
    m = _DURATION_RE.search(info)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None
    a = _AUDIO_RE.search(info)
    return AudioProbe(duration=duration, has_audio=a is not None, audio_stream=a.group(1).strip() if a else "")


def decode_audio(path: str | Path, max_seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; InvalidAudio for anything unusable."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidAudio(f"the speech file cannot be opened: {exc.strerror}") from None
    if size == 0:
        raise InvalidAudio("the speech file is empty (0 bytes)")
    info = probe(path)
    if not info.has_audio:
        raise InvalidAudio("the file has no audio stream: upload a speech recording (or a video with sound)")
    if info.duration is not None and info.duration > max_seconds + _DURATION_SLACK_S:
        raise InvalidAudio(
            f"the speech is {info.duration:.1f} s long; at most {max_seconds:g} s are allowed (max_audio_seconds)"
        )
    samples, native_rate, channels = _decode_native(path, limit_seconds=max_seconds + 1.0)
    if samples.size == 0:
        raise InvalidAudio("the speech file contains no decodable audio samples")
    if samples.shape[0] > max_seconds * native_rate:
        raise InvalidAudio(
            f"the speech is longer than the {max_seconds:g} s allowed (max_audio_seconds)"
        )
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]  # librosa.to_mono: channel average
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    return resample(mono, native_rate, sample_rate)


def resample(wav: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """soxr "HQ" resampling with librosa's length rule (ceil), float32 in and out."""
    if orig_rate == target_rate:
        return wav
    import soxr

    out = soxr.resample(wav, orig_rate, target_rate, quality="soxr_hq")
    n = int(math.ceil(wav.shape[0] * float(target_rate) / orig_rate))
    if out.shape[0] >= n:
        out = out[:n]
    else:
        out = np.pad(out, (0, n - out.shape[0]))
    return np.ascontiguousarray(out, dtype=np.float32)


def _decode_native(path: Path, limit_seconds: float) -> tuple[np.ndarray, int, int]:
    """First audio stream as float32 (frames, channels) at its own rate, via a 32-bit float WAV pipe."""
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        "-i", str(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-t", f"{limit_seconds:.3f}",
        "-map_metadata", "-1", "-flags", "+bitexact", "-fflags", "+bitexact",
        "-c:a", "pcm_f32le", "-f", "wav", "pipe:1",
    ]  # fmt: skip
    # Generous timeout: decoding runs at hundreds of times real time.
    timeout = 60 + 2 * limit_seconds
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InvalidAudio("the speech file could not be decoded in reasonable time") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 and not proc.stdout:
        raise InvalidAudio(f"the speech file could not be decoded ({_last_line(err)})")
    try:
        return _parse_float_wav(proc.stdout)
    except ValueError as exc:
        raise InvalidAudio(f"the speech file could not be decoded ({exc})") from None


def _parse_float_wav(data: bytes) -> tuple[np.ndarray, int, int]:
    """Parse the RIFF stream ffmpeg wrote to a pipe (its size fields may be placeholders)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("the decoder produced no audio")
    pos, rate, channels = 12, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt_tag, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt_tag not in (_WAVE_FORMAT_IEEE_FLOAT, _WAVE_FORMAT_EXTENSIBLE) or bits != 32:
                raise ValueError(f"unexpected decoder output format {fmt_tag}/{bits} bit")
        elif cid == b"data":
            if not channels or not rate:
                raise ValueError("the decoder output has no format header")
            available = len(data) - body  # a pipe cannot be rewound: the size field may be a placeholder
            if 0 < size < available:  # 0 and 0xFFFFFFFF are placeholders
                available = size
            usable = available // (4 * channels) * (4 * channels)
            # a read-only view of the pipe bytes (no copy: long stereo clips stay within memory)
            samples = np.frombuffer(data, dtype="<f4", count=usable // 4, offset=body).reshape(-1, channels)
            return samples.astype(np.float32, copy=False), rate, channels
        pos = body + size + (size & 1)
    raise ValueError("the decoder output has no audio data")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no details"

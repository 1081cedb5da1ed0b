"""Video segments: per-chunk H.264 MPEG-TS segments joined without re-encoding (video.encode_segment,
video.concat_segments): the concatenation holds exactly the segments' frames, every segment starts on a
keyframe and continues the previous one's timestamps, audio and video agree to within one frame."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from sadtalker.audio.decode import ffmpeg_exe
from sadtalker.video import GOP_FRAMES, concat_segments, decode_frames, encode_segment, probe

FRAME_S = 1 / 25


def _frames(start: int, end: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose content depends on the clip index (random halves: x264 would see a scene cut everywhere)."""
    out = np.empty((end - start, h, w, 3), np.uint8)
    for n, i in enumerate(range(start, end)):
        rng = np.random.default_rng(i)
        out[n] = (i * 5) % 256
        out[n, : h // 2] = rng.integers(0, 255, (h // 2, w, 3), dtype=np.uint8)
    return out


def _decoded_span(path, stream: str) -> tuple[float, float, int]:
    """(first timestamp, end of the last frame, frames) of a decoded stream, in seconds, container
    timestamps kept (-copyts)."""
    out = subprocess.run([ffmpeg_exe(), "-nostdin", "-copyts", "-i", str(path), "-map", stream, "-f", "framecrc", "-"],
                         capture_output=True, check=True).stdout.decode()
    num, den = (int(v) for v in re.search(r"#tb 0: (\d+)/(\d+)", out).groups())
    rows = [[int(v) for v in line.split(",")[1:4]] for line in out.splitlines() if line and not line.startswith("#")]
    start = rows[0][1] * num / den
    end = (rows[-1][1] + rows[-1][2]) * num / den
    return start, end, len(rows)


def _keyframes(path) -> list[int]:
    err = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", str(path), "-vf", "showinfo", "-f", "null", "-"],
                         capture_output=True, check=True).stderr.decode()
    return [int(n) for n, key in re.findall(r"n:\s*(\d+) .*?iskey:([01])", err) if key == "1"]


def _segments(tmp_path, bounds: list[int], h: int = 48, w: int = 64) -> list[str]:
    paths = []
    for s, e in zip(bounds, bounds[1:], strict=False):
        info = encode_segment(iter(_frames(s, e, h, w)), tmp_path / f"{s:06d}-{e:06d}.ts", s)
        assert (info.frames, info.width, info.height) == (e - s, w + w % 2, h + h % 2)
        paths.append(info.path)
    return paths


def test_concatenation_is_the_segments_frames_in_order(tmp_path):
    bounds = [0, 10, 23, 24, 40]
    paths = _segments(tmp_path, bounds, h=47, w=63)
    wav = (0.1 * np.sin(np.arange(16000 * 2) / 10)).astype(np.float32)  # longer than the video: trimmed
    info = concat_segments(paths, wav, 40, tmp_path / "out" / "video.mp4")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["video.mp4"], "temporary files left behind"
    assert (info.frames, info.width, info.height, info.audio_samples) == (40, 64, 48, 40 * 640)

    joined = decode_frames(info.path)
    parts = [decode_frames(p) for p in paths]
    assert [len(p) for p in parts] == [10, 13, 1, 16]
    np.testing.assert_array_equal(joined, np.concatenate(parts))  # copied, not re-encoded
    # the flat (lower) half survives the lossy encode, in order (odd sizes padded, never cropped)
    source = _frames(0, 40, 47, 63)
    # (neighbouring frames differ by 5 levels there; a frame out of place would be off by 5 on average)
    assert np.abs(joined[:, 26:47, :63].astype(int) - source[:, 26:]).mean(axis=(1, 2, 3)).max() < 2

    p = probe(info.path)
    assert (p.video_codec, p.audio_codec, p.pix_fmt, p.frames) == ("h264", "aac", "yuv420p", 40)
    v0, v1, nv = _decoded_span(info.path, "0:v:0")
    a0, a1, _ = _decoded_span(info.path, "0:a:0")
    assert (v0, nv) == (0.0, 40) and abs(v1 - 40 * FRAME_S) < 1e-6
    assert abs(a0 - v0) < FRAME_S and abs(a1 - v1) < FRAME_S
    data = open(info.path, "rb").read()
    assert data.find(b"moov") < data.find(b"mdat"), "not faststart: moov atom after mdat"


def test_every_segment_starts_on_a_keyframe_and_continues_the_timestamps(tmp_path):
    bounds = [0, 30, 31, 30 + GOP_FRAMES + 5]
    paths = _segments(tmp_path, bounds, 32, 32)
    for (s, e), path in zip(zip(bounds, bounds[1:], strict=False), paths, strict=True):
        # the first frame, then only the fixed GOP (random content would trigger x264's scene cuts)
        assert _keyframes(path) == list(range(0, e - s, GOP_FRAMES))
        start, end, n = _decoded_span(path, "0:v:0")
        assert n == e - s and abs(start - s * FRAME_S) < 1e-6 and abs(end - e * FRAME_S) < 1e-6


def test_bad_input_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        encode_segment(iter([]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match="uint8"):
        encode_segment(iter([np.zeros((8, 8, 3), np.float32)]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match=r"frame 1 is"):
        encode_segment(iter([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]), tmp_path / "a.ts", 0)
    with pytest.raises(ValueError, match="no segments"):
        concat_segments([], None, 0, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_sixty_seconds_keep_lip_sync(tmp_path):
    """1500 synthetic frames (16x16, not a rendered clip) in 25 segments of 60 frames: after the concat the
    audio and the video start and end within one frame of each other and of 60 s."""
    bounds = list(range(0, 1501, 60))
    paths = _segments(tmp_path, bounds, 16, 16)
    wav = (0.1 * np.sin(np.arange(16000 * 59) / 7)).astype(np.float32)  # a second short: padded
    info = concat_segments(paths, wav, 1500, tmp_path / "video.mp4")
    v0, v1, nv = _decoded_span(info.path, "0:v:0")
    a0, a1, _ = _decoded_span(info.path, "0:a:0")
    assert nv == 1500 and v0 == 0.0 and abs(v1 - 60.0) < 1e-6
    assert abs(a0 - v0) < FRAME_S and abs(a1 - v1) < FRAME_S, (a0, a1, v0, v1)
    p = probe(info.path)
    assert abs(p.audio_duration - 60.0) < FRAME_S and p.frames == 1500

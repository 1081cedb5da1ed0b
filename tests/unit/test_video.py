"""Video I/O: exact frame count, even dimensions, H.264 yuv420p + AAC, faststart, audio length, atomic output."""

from __future__ import annotations

import numpy as np
import pytest

from sadtalker.video import contact_sheet, encode_video, even_frame, fit_audio, probe


def _frames(n: int, h: int, w: int):
    rng = np.random.default_rng(n)
    for i in range(n):
        frame = np.full((h, w, 3), (i * 7) % 256, np.uint8)
        frame[: h // 2] = rng.integers(0, 255, (h // 2, w, 3), dtype=np.uint8)
        yield frame


def test_even_frame_pads_odd_sizes_by_one_pixel():
    f = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = even_frame(f)
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[:5, :7], f)
    np.testing.assert_array_equal(out[5, :7], f[4])
    np.testing.assert_array_equal(out[:5, 7], f[:, 6])
    assert even_frame(out) is out


@pytest.mark.parametrize("n,expected", [(10, 6400), (75, 48000)])
def test_fit_audio_trims_and_pads(n, expected):
    wav = np.ones(48000 - 123, np.float32)
    out = fit_audio(wav, n)
    assert out.shape == (expected,) and out.dtype == np.float32
    assert out[: min(expected, len(wav))].min() == 1
    if expected > len(wav):
        assert not out[len(wav) :].any()


@pytest.mark.parametrize("frames,audio_seconds", [(25, 1.3), (30, 0.7)])
def test_encode_video_with_audio(tmp_path, frames, audio_seconds):
    wav = (0.1 * np.sin(np.arange(int(16000 * audio_seconds)) / 10)).astype(np.float32)
    out = tmp_path / "sub" / "v.mp4"
    info = encode_video(_frames(frames, 61, 83), wav, out)
    assert (info.frames, info.width, info.height) == (frames, 84, 62)
    assert [p.name for p in out.parent.iterdir()] == ["v.mp4"], "temporary files left behind"
    p = probe(out)
    assert (p.video_codec, p.audio_codec, p.pix_fmt) == ("h264", "aac", "yuv420p")
    assert (p.width, p.height, p.frames) == (84, 62, frames)
    assert abs(p.audio_duration - frames / 25) <= 0.05
    assert abs(p.video_duration - frames / 25) <= 1e-6
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "not faststart: moov atom after mdat"


def test_encode_video_without_audio(tmp_path):
    info = encode_video(_frames(5, 32, 32), None, tmp_path / "v.mp4")
    p = probe(info.path)
    assert p.audio_codec is None and p.video_codec == "h264" and p.frames == 5


def test_encode_video_rejects_bad_frames_and_writes_nothing(tmp_path):
    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        yield np.zeros((34, 32, 3), np.uint8)

    with pytest.raises(ValueError):
        encode_video(frames(), None, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        encode_video(iter([]), None, tmp_path / "v.mp4")
    with pytest.raises(ValueError):
        encode_video(iter([np.zeros((32, 32, 3), np.float32)]), None, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_probe_rejects_non_media(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError):
        probe(bad)


def test_contact_sheet_is_a_jpeg_grid():
    import cv2

    frames = list(_frames(20, 100, 80))
    data = contact_sheet(frames, count=6, columns=3, tile=40)
    assert data[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (2 * 50, 3 * 40, 3)
    with pytest.raises(ValueError):
        contact_sheet([])

"""Source image decoding: formats, conversions, EXIF orientation, size limits and corrupt files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sadtalker.errors import InvalidImage
from sadtalker.face.image import decode_image, encode_png
from sadtalker.face.limits import looks_like_video

ASTRONAUT = Path(__file__).parents[1] / "fixtures" / "reference" / "sadtalker" / "astronaut.png"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def _save(arr_or_img, fmt: str, **kw) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height with (almost) no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_lossless_formats_roundtrip(astronaut, fmt) -> None:
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode_image(_save(astronaut, fmt, **kw), f"face.{fmt.lower()}")
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    np.testing.assert_array_equal(out, astronaut)


def test_jpeg(astronaut) -> None:
    out = decode_image(_save(astronaut, "JPEG", quality=95), "face.jpg")
    assert out.shape == astronaut.shape and np.abs(out.astype(int) - astronaut).mean() < 3


def test_palette_png(astronaut) -> None:
    pal = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    out = decode_image(_save(pal, "PNG"))
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


def test_rgba_png_composited_on_white(astronaut) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:50, :, 3] = 0  # a transparent band at the top
    out = decode_image(_save(rgba, "PNG"), "face.png")
    assert out.shape == astronaut.shape
    np.testing.assert_array_equal(out[50:], astronaut[50:])
    assert (out[:50] == 255).all()


def test_16bit_grayscale_png(astronaut) -> None:
    gray8 = np.asarray(Image.fromarray(astronaut).convert("L"))
    gray16 = gray8.astype(np.uint16) * 257
    data = _save(Image.fromarray(gray16), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data, "gray16.png")
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], gray8)  # 16-bit scaled back exactly, not clipped at 255
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_cmyk_jpeg_becomes_rgb(astronaut) -> None:
    out = decode_image(_save(Image.fromarray(astronaut).convert("CMYK"), "JPEG", quality=95))
    assert out.shape == astronaut.shape and np.abs(out.astype(int) - astronaut).mean() < 6


def test_exif_orientation_applied(astronaut) -> None:
    stored = np.ascontiguousarray(np.rot90(astronaut, k=1))  # pixels stored sideways (90 deg counter-clockwise)
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = decode_image(_save(img, "PNG", exif=exif.tobytes()), "portrait.png")
    np.testing.assert_array_equal(out, astronaut)


def test_one_pixel_png_rejected() -> None:
    with pytest.raises(InvalidImage, match="1x1 pixels"):
        decode_image(_save(np.zeros((1, 1, 3), np.uint8), "PNG"), "tiny.png")


def test_huge_header_rejected_before_decoding() -> None:
    data = png_header_only(30000, 30000)
    assert len(data) < 200
    with pytest.raises(InvalidImage, match="too many pixels|30000x30000"):
        decode_image(data, "bomb.png")


def test_header_over_our_limit_rejected() -> None:
    """Below Pillow's own bomb limit but above ours: our header check rejects it with the size."""
    with pytest.raises(InvalidImage, match="9000x9000"):
        decode_image(png_header_only(9000, 9000), "big.png")


def test_truncated_jpeg_rejected(astronaut) -> None:
    data = _save(astronaut, "JPEG", quality=95)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], "cut.jpg")


def test_text_named_jpg_rejected() -> None:
    with pytest.raises(InvalidImage, match="not a picture"):
        decode_image(b"this is not an image, just some text\n" * 10, "notes.jpg")


def test_empty_rejected() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", "face.png")


def test_video_magic() -> None:
    assert looks_like_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8)
    assert looks_like_video(b"\x1a\x45\xdf\xa3" + b"\x00" * 12)
    assert not looks_like_video(png_header_only(100, 100))
    assert not looks_like_video(b"#EXTM3U\n#EXT-X-VERSION:3\nfile:///etc/passwd\n")


def test_playlist_named_mp4_is_not_handed_to_ffmpeg() -> None:
    """An HLS playlist renamed .mp4 must not make ffmpeg read files it names."""
    with pytest.raises(InvalidImage, match="not a picture"):
        decode_image(b"#EXTM3U\n#EXTINF:1,\nfile:///etc/hostname\n#EXT-X-ENDLIST\n", "clip.mp4")


def test_eps_is_not_decoded() -> None:
    """Formats outside the accepted list (EPS would run Ghostscript) are unreadable by design."""
    with pytest.raises(InvalidImage, match="not a picture"):
        decode_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n", "face.eps")


def test_encode_png_is_lossless(astronaut) -> None:
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(astronaut)))), astronaut)

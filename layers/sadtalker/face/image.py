"""Decoding the source picture into an RGB uint8 array, defensively.

Accepted: jpg, png (8/16-bit, palette, RGBA), webp, bmp, gif, tiff and avif through Pillow, and a video
(mp4/mov/webm/mkv/avi, recognised by its bytes). ``source_frames`` yields the frames of an animated picture
or a video one at a time (at most ``SOURCE_SCAN_FRAMES``), so Preprocess can animate the first frame that
shows a face; ``decode_image`` returns the first frame. Decisions:
- the pixel count is checked from the header before any pixel is decoded (Pillow reads headers
  lazily), so a decompression bomb costs nothing;
- EXIF orientation is applied (phones store portraits rotated);
- grayscale, CMYK, palette and 16-bit images become 8-bit RGB (16-bit keeps its top 8 bits, rounded);
- transparency is composited over white (a cut-out portrait should not get a black background);
- sides below ``MIN_SIDE`` px are rejected: no face detector finds a face there.
Every failure is ``InvalidImage`` with one sentence.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from ..errors import InvalidImage
from .limits import DEFAULT_LIMITS, MAX_VIDEO_BYTES, ImageLimits, check_dimensions, looks_like_video, video_format
from .video_frames import VideoFrames

# Pillow decoders we accept. Anything else (EPS/PDF would run Ghostscript, exotic formats add attack
# surface) is rejected as unreadable.
PICTURE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "AVIF")  # JPEG covers MPO (phones)
# How many frames of a video or an animated picture are searched for a face: 4 s at 25 fps. The official
# code takes frame 0 only; a clip that opens on a title card or a turned head still works here, and a
# clip without a face costs at most this many detections before NoFaceDetected.
SOURCE_SCAN_FRAMES = 100


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: Pillow's convert("RGB") would clip at 255, so scale ourselves.
        arr = np.asarray(im).astype(np.int64)
        peak = 65535 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
        gray = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8) if peak != 255 else arr.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.uint8)


def decode_picture(data: bytes, what: str = "the image", limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A still image's bytes -> (H, W, 3) uint8 RGB, EXIF orientation applied."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning is an error here; our limits decide first anyway.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PICTURE_FORMATS) as im:
                check_dimensions(im.width, im.height, what, limits)  # header only: no pixel decoded yet
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb_array(im)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"{what} declares too many pixels to be decoded safely (at most {limits.max_pixels // 1_000_000} megapixels)"
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage(f"{what} is not a picture format that can be read (jpg, png, webp, bmp)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, TypeError) as exc:
        raise InvalidImage(f"{what} cannot be decoded ({_short(exc)}); it may be truncated or corrupt") from None
    check_dimensions(rgb.shape[1], rgb.shape[0], what, limits)
    return np.ascontiguousarray(rgb)


def _what(name: str) -> str:
    return f"the source image {os.path.basename(name)!r}" if name else "the source image"


def source_frames(data: bytes, name: str = "", limits: ImageLimits = DEFAULT_LIMITS,
                  max_frames: int = SOURCE_SCAN_FRAMES) -> Iterator[np.ndarray]:
    """The source's frames as (H, W, 3) uint8 RGB, first to last (one for a still picture)."""
    what = _what(name)
    if not data:
        raise InvalidImage(f"{what} is empty")
    if looks_like_video(data):
        yield from _video_frames(data, what, limits, max_frames)
        return
    first = decode_picture(data, what, limits)  # every check of a still, on the first frame
    yield first
    with Image.open(io.BytesIO(data), formats=PICTURE_FORMATS) as im:
        if getattr(im, "n_frames", 1) <= 1:
            return
        try:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if 0 < i < max_frames:
                    yield np.ascontiguousarray(_to_rgb_array(frame.copy()))
                elif i >= max_frames:
                    return
        except (OSError, ValueError, EOFError) as exc:
            raise InvalidImage(f"{what} has a frame that cannot be decoded ({_short(exc)})") from None


def _video_frames(data: bytes, what: str, limits: ImageLimits, max_frames: int) -> Iterator[np.ndarray]:
    if len(data) > MAX_VIDEO_BYTES:
        raise InvalidImage(f"{what} is {len(data)} bytes; videos up to {MAX_VIDEO_BYTES} bytes are accepted")
    with tempfile.TemporaryDirectory(prefix="sadtalker-src-") as tmp:
        path = os.path.join(tmp, "source.video")
        with open(path, "wb") as fh:
            fh.write(data)
        with VideoFrames(path, what, limits, input_format=video_format(data), max_frames=max_frames) as frames:
            yield from frames


def decode_image(data: bytes, name: str = "", limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The source's first frame (a picture, or a video's frame 0). Returns (H, W, 3) uint8 RGB."""
    for frame in source_frames(data, name, limits, max_frames=1):
        return frame
    raise InvalidImage(f"{_what(name)} contains no video frame")


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG of an RGB uint8 array (what the later stages read back)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]

"""Size limits of source pictures and videos, and recognising a video from its bytes.

One definition for the decoders here (``image``, ``video_frames``, ``reference_video``) and for ValidateJob,
which checks the same limits from a file's header without decoding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidImage

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # ~ a 7700 x 5200 photo; more is never needed for a 256/512 face
MAX_VIDEO_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ImageLimits:
    min_side: int = MIN_SIDE
    max_side: int = MAX_SIDE
    max_pixels: int = MAX_PIXELS


DEFAULT_LIMITS = ImageLimits()


def video_format(data: bytes) -> str | None:
    """The ffmpeg demuxer for a video's magic bytes: ISO-BMFF (mp4/mov), Matroska/WebM, AVI; else None.

    The demuxer is forced from these bytes so that ffmpeg never probes its way into playlist-style
    formats (HLS, concat) that would open other files or URLs named inside an upload.
    """
    head = data[:16]
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    return None


def looks_like_video(data: bytes) -> bool:
    return video_format(data) is not None


def check_dimensions(width: int, height: int, what: str = "the image", limits: ImageLimits = DEFAULT_LIMITS) -> None:
    if width < limits.min_side or height < limits.min_side:
        raise InvalidImage(
            f"{what} is {width}x{height} pixels; at least {limits.min_side}x{limits.min_side} are needed to find a face"
        )
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise InvalidImage(
            f"{what} is {width}x{height} pixels; at most {limits.max_pixels // 1_000_000} megapixels and "
            f"{limits.max_side} pixels per side are accepted"
        )

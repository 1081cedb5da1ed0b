"""Frame-by-frame video decoding with imageio-ffmpeg's static ffmpeg binary (argument lists, no shell).

Frames arrive as RGB uint8 arrays one at a time, so a long reference video never sits in memory.
The frame size is checked against the image limits before the first frame is read; ffmpeg applies
the container's rotation metadata itself (phone videos come out upright).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..errors import InvalidImage
from .limits import DEFAULT_LIMITS, ImageLimits, check_dimensions


class VideoFrames:
    """Iterate over a video file's frames: ``with VideoFrames(path) as v: for rgb in v: ...``."""

    def __init__(self, path: str | os.PathLike, what: str = "the video", limits: ImageLimits = DEFAULT_LIMITS,
                 max_frames: int | None = None, input_format: str | None = None):
        self.path = str(path)
        self.input_format = input_format
        self.what = what
        self.limits = limits
        self.max_frames = max_frames
        self.fps: float = 0.0
        self.size: tuple[int, int] = (0, 0)
        self._gen = None

    def __enter__(self) -> VideoFrames:
        import imageio_ffmpeg

        out_params = ["-an", "-sn", "-dn"]
        if self.max_frames is not None:
            out_params += ["-frames:v", str(int(self.max_frames))]
        # Local file protocol only, and a forced demuxer when known: an upload cannot make ffmpeg open
        # other files or URLs.
        in_params = ["-nostdin", "-protocol_whitelist", "file"]
        if self.input_format:
            in_params += ["-f", self.input_format]
        self._gen = imageio_ffmpeg.read_frames(self.path, pix_fmt="rgb24", input_params=in_params,
                                               output_params=out_params)
        try:
            meta = next(self._gen)
        except (OSError, RuntimeError, StopIteration, ValueError) as exc:
            self.close()
            raise InvalidImage(f"{self.what} cannot be decoded as a video ({_first_line(exc)})") from None
        except BaseException:
            self.close()
            raise
        size = meta.get("size") or (0, 0)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(meta.get("fps") or 0.0)
        try:
            check_dimensions(self.size[0], self.size[1], self.what, self.limits)
        except InvalidImage:
            self.close()
            raise
        return self

    def __iter__(self) -> Iterator[np.ndarray]:
        w, h = self.size
        try:
            for raw in self._gen:
                yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
        except (RuntimeError, OSError, ValueError) as exc:
            raise InvalidImage(f"{self.what} is truncated or corrupt ({_first_line(exc)})") from None

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()  # terminates the ffmpeg process
            self._gen = None

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("===")]
    # ffmpeg's useful message is usually the last stderr line
    return (lines[-1] if lines else type(exc).__name__)[:160]

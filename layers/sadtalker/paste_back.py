"""Output frames: SadTalker's aspect-ratio resize and, in full modes, the seamlessClone paste-back.

crop / extcrop / resize: each rendered frame is resized (cv2 INTER_LINEAR) to
``(size, int(size * h / w))`` with ``(w, h) = crop_info_size``. full / extfull: the same resize, then the
frame is resized to the face box on the original photo and blended with ``cv2.seamlessClone`` (NORMAL_CLONE,
full-255 mask, centre of the box), computed on BGR arrays like the original; ext modes use the crop box
instead of the quad-refined one. The original photo's BGR copy is made once per job (``PasteBack``).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from .errors import InvalidImage
from .params import JobParams


def aspect_resize(frame_rgb_u8: np.ndarray, crop_size: tuple[int, int], size: int) -> np.ndarray:
    w, h = int(crop_size[0]), int(crop_size[1])
    return cv2.resize(frame_rgb_u8, (size, int(size * h / w)))


def face_box(face: Mapping[str, np.ndarray], ext_mode: bool) -> tuple[int, int, int, int]:
    """(ox1, oy1, ox2, oy2) on the original photo, as ``paste_pic`` computes it."""
    clx, cly, crx, cry = (int(v) for v in np.asarray(face["crop_info_box"]).reshape(4))
    if ext_mode:
        return clx, cly, crx, cry
    lx, ly, rx, ry = (int(v) for v in np.asarray(face["crop_info_quad_f64"]).reshape(4))
    return clx + lx, cly + ly, clx + rx, cly + ry


class PasteBack:
    """Per-job compositor: ``PasteBack(face, original_rgb, params)(frame_rgb_u8) -> output frame (RGB)``."""

    def __init__(self, face: Mapping[str, np.ndarray], original_rgb: np.ndarray, params: JobParams) -> None:
        self.size = params.size
        self.crop_size = tuple(int(v) for v in np.asarray(face["crop_info_size"]).reshape(2))
        self.full = params.full_mode
        if self.crop_size[0] <= 0 or self.crop_size[1] <= 0:
            raise InvalidImage(f"the face crop size {self.crop_size} is not positive")
        if self.full:
            if np.any(np.asarray(face["crop_info_box"]) < 0):
                raise InvalidImage("full-mode paste-back needs a face crop box, but the preprocessing made none")
            self.original_bgr = np.ascontiguousarray(cv2.cvtColor(np.asarray(original_rgb, np.uint8), cv2.COLOR_RGB2BGR))
            ox1, oy1, ox2, oy2 = face_box(face, params.ext_mode)
            if ox2 - ox1 <= 0 or oy2 - oy1 <= 0:
                raise InvalidImage(f"the face box ({ox1}, {oy1}, {ox2}, {oy2}) on the photo is empty")
            self.box_size = (ox2 - ox1, oy2 - oy1)
            self.centre = ((ox1 + ox2) // 2, (oy1 + oy2) // 2)
            self.mask = np.full((oy2 - oy1, ox2 - ox1, 3), 255, np.uint8)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        if self.full:
            return self.original_bgr.shape  # type: ignore[return-value]
        return (int(self.size * self.crop_size[1] / self.crop_size[0]), self.size, 3)

    def __call__(self, frame_rgb_u8: np.ndarray) -> np.ndarray:
        frame = aspect_resize(frame_rgb_u8, self.crop_size, self.size)
        if not self.full:
            return frame
        patch = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), self.box_size)
        out = cv2.seamlessClone(patch, self.original_bgr, self.mask, self.centre, cv2.NORMAL_CLONE)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def compose_frame(
    frame_rgb_u8: np.ndarray, face: Mapping[str, np.ndarray], original_rgb: np.ndarray, params: JobParams
) -> np.ndarray:
    """One output frame (RGB uint8). For many frames build a ``PasteBack`` once instead."""
    return PasteBack(face, original_rgb, params)(frame_rgb_u8)

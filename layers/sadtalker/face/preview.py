"""`sadtalker preview-crop`: what Preprocess would do with a source, drawn onto it.

Every detected face gets its box and its number (the ``face_index`` order: left to right from 0); the
face a job would animate gets a thicker box and the region the crop mode cuts out (the renderer's input
before resizing) as a rectangle in a third colour. The picture is the frame Preprocess would
use (for a video or GIF: the first frame with a face). Nothing here touches storage or a network.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import cv2
import numpy as np

from .crop import CropGeometry, crop_geometry
from .landmarks import FaceLandmarks, LandmarkBackend, pick_face

FACE_COLOUR = (255, 200, 0)  # RGB: every face found
CHOSEN_COLOUR = (0, 220, 0)  # the face a job animates
CROP_COLOUR = (255, 40, 40)  # the region cut out for it


@dataclass(frozen=True)
class CropPreview:
    image: np.ndarray  # (H, W, 3) uint8 RGB with the drawing
    faces: list[FaceLandmarks]
    chosen: FaceLandmarks
    crop: CropGeometry
    crop_rect: tuple[int, int, int, int]  # x1, y1, x2, y2 in the picture's pixels
    frame: int  # the frame of a video/GIF source


def crop_rect(geom: CropGeometry) -> tuple[int, int, int, int]:
    """The region the crop mode cuts out, in the original picture's pixels (the whole picture for resize)."""
    width, height = geom.photo_size
    if geom.box is None:
        return 0, 0, width, height
    scale = width / geom.rsize[0]  # > 1 only when the crop was computed on a shrunk copy
    clx, cly, crx, cry = geom.box
    if geom.ext:
        rect = (clx, cly, crx, cry)
    else:
        lx, ly, rx, ry = (int(v) for v in geom.quad)
        rect = (clx + lx, cly + ly, clx + min(rx, crx - clx), cly + min(ry, cry - cly))
    return tuple(int(round(v * scale)) for v in rect)


def draw_preview(image: np.ndarray, faces: list[FaceLandmarks], chosen: FaceLandmarks, geom: CropGeometry,
                 frame: int = 0) -> CropPreview:
    out = np.ascontiguousarray(image.copy())
    thick = max(2, round(max(image.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        is_chosen = face.index == chosen.index
        colour = CHOSEN_COLOUR if is_chosen else FACE_COLOUR
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick * (2 if is_chosen else 1))
        label = str(face.index)
        scale = max(0.6, (y2 - y1) / 120)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y1 - thick * 2 if y1 - th - thick * 2 > 0 else y2 + th + thick * 2
        cv2.rectangle(out, (x1, ty - th - thick), (x1 + tw + 2 * thick, ty + thick), colour, -1)
        cv2.putText(out, label, (x1 + thick, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    rect = crop_rect(geom)
    cv2.rectangle(out, rect[:2], rect[2:], CROP_COLOUR, thick)
    return CropPreview(out, faces, chosen, geom, rect, frame)


def preview_crop(frames: Generator[np.ndarray, None, None], backend: LandmarkBackend, mode: str, face_index: int | None = None,
                 what: str = "the source image") -> CropPreview:
    """Pick the frame and face as Preprocess does (``landmarks.pick_face``) and draw them."""
    try:
        image, faces, chosen, number = pick_face(frames, backend, face_index, what)
    finally:
        frames.close()  # a video's ffmpeg stops here
    geom = crop_geometry(chosen.lm68, (image.shape[1], image.shape[0]), mode)
    return draw_preview(image, faces, chosen, geom, number)

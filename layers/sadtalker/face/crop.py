"""Face crop modes: crop, extcrop, resize, full, extfull.

The geometry is an FFHQ-style oriented square around eyes and mouth. It is computed with the same
numpy dtypes and operation order as the original (float32 landmarks, float64 from the quad on)
because the result is truncated to integer pixels: a last-bit difference can move the crop by one
pixel. The original's quirks are kept on purpose:
- the bottom edge ``ry`` is clipped with the image *width*;
- ext modes keep the whole bordered box but report the same ``crop_info`` size as crop mode;
- "full"/"extfull" crop exactly like "crop"/"extcrop" (they differ only later, in paste-back).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The original aligns for an FFHQ output of 512 px; it only matters for the shrink decision.
_ALIGN_OUTPUT_SIZE = 512
CROP_MODES = ("crop", "extcrop", "resize", "full", "extfull")


@dataclass(frozen=True)
class CropGeometry:
    """Where the face crop lies in the photo, and what paste-back needs to put it back.

    ``box`` = (clx, cly, crx, cry), the bordered box in the (possibly shrunk) photo; ``quad`` =
    (lx, ly, rx, ry) floats relative to that box; ``size`` = (w, h) of the quad-refined region.
    In resize mode ``box`` and ``quad`` are None and ``size`` is the photo's (W, H).
    """

    mode: str
    photo_size: tuple[int, int]
    rsize: tuple[int, int]
    size: tuple[int, int]
    box: tuple[int, int, int, int] | None
    quad: tuple[float, float, float, float] | None

    @property
    def ext(self) -> bool:
        return self.mode.startswith("ext")

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The form stored in face.npz (-1 everywhere a resize-mode value does not exist)."""
        box = self.box if self.box is not None else (-1, -1, -1, -1)
        quad = self.quad if self.quad is not None else (-1.0, -1.0, -1.0, -1.0)
        return {
            "crop_info_size": np.asarray(self.size, dtype=np.int64),
            "crop_info_box": np.asarray(box, dtype=np.int64),
            "crop_info_quad_f64": np.asarray(quad, dtype=np.float64),
        }

    def to_dict(self) -> dict:
        return {"mode": self.mode, "size": list(self.size), "box": list(self.box) if self.box else None,
                "quad": [float(q) for q in self.quad] if self.quad else None}


def _oriented_quad(lm68: np.ndarray, width: int, height: int):
    """rsize, bordered box and refined quad of the oriented face square (the original's align_face)."""
    lm = np.asarray(lm68, dtype=np.float32)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # The list factor promotes to float64 exactly as the original's numpy expression does.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = np.hypot(*x) * 2

    shrink = int(np.floor(qsize / _ALIGN_OUTPUT_SIZE * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(width) / shrink)), int(np.rint(float(height) / shrink)))
        quad /= shrink
        qsize /= shrink
    else:
        rsize = (int(np.rint(float(width))), int(np.rint(float(height))))
    img_w, img_h = rsize

    border = max(int(np.rint(qsize * 0.1)), 3)
    box = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    box = (max(box[0] - border, 0), max(box[1] - border, 0), min(box[2] + border, img_w), min(box[3] + border, img_h))
    if box[2] - box[0] < img_w or box[3] - box[1] < img_h:
        quad -= box[0:2]

    q = (quad + 0.5).flatten()
    lx = max(min(q[0], q[2]), 0)
    ly = max(min(q[1], q[7]), 0)
    rx = min(max(q[4], q[6]), img_w)
    ry = min(max(q[3], q[5]), img_w)  # quirk: clipped with the width, as the original
    return rsize, box, (float(lx), float(ly), float(rx), float(ry))


def crop_geometry(lm68: np.ndarray, image_size: tuple[int, int], mode: str) -> CropGeometry:
    """The crop of ``mode`` for a photo of ``image_size`` = (W, H) with 68 landmarks (x, y pixels)."""
    if mode not in CROP_MODES:
        raise ValueError(f"unknown crop mode {mode!r}; known: {', '.join(CROP_MODES)}")
    width, height = int(image_size[0]), int(image_size[1])
    if mode == "resize":
        return CropGeometry(mode, (width, height), (width, height), (width, height), None, None)
    rsize, box, quad = _oriented_quad(lm68, width, height)
    clx, cly, _, _ = box
    lx, ly, rx, ry = (int(v) for v in quad)
    ox1, ox2, oy1, oy2 = clx + lx, clx + rx, cly + ly, cly + ry
    return CropGeometry(mode, (width, height), rsize, (ox2 - ox1, oy2 - oy1), box, quad)


def cut_face(image: np.ndarray, geom: CropGeometry) -> np.ndarray:
    """The face region before resizing (the whole photo in resize mode)."""
    if geom.box is None:
        return image
    h, w = image.shape[:2]
    if (w, h) != geom.rsize:
        image = cv2.resize(image, geom.rsize)  # INTER_LINEAR, as the original (only for qsize >= 2048 px)
    clx, cly, crx, cry = geom.box
    out = image[cly:cry, clx:crx]
    if not geom.ext:
        lx, ly, rx, ry = (int(v) for v in geom.quad)
        out = out[ly:ry, lx:rx]
    return out


def crop_face(image: np.ndarray, geom: CropGeometry, size: int) -> np.ndarray:
    """The size x size RGB uint8 image the renderer animates (cv2 INTER_LINEAR, as the original)."""
    region = cut_face(image, geom)
    if region.shape[0] < 1 or region.shape[1] < 1:
        from ..errors import NoFaceDetected

        raise NoFaceDetected("the detected face lies outside the image; use a photo where the whole face is visible")
    return np.ascontiguousarray(cv2.resize(np.ascontiguousarray(region), (size, size)))


def map_landmarks_to_crop(lm68: np.ndarray, geom: CropGeometry, size: int) -> np.ndarray:
    """Landmarks of the photo expressed in the size x size crop (a fallback when re-detection fails)."""
    lm = np.asarray(lm68, dtype=np.float64).copy()
    if geom.box is None:
        w, h = geom.rsize
        return (lm * [size / w, size / h]).astype(np.float32)
    scale = geom.rsize[0] / geom.photo_size[0]  # < 1 only when the photo was shrunk
    clx, cly, crx, cry = geom.box
    x0, y0 = clx, cly
    w, h = crx - clx, cry - cly
    if not geom.ext:
        lx, ly, rx, ry = (int(v) for v in geom.quad)
        x0, y0 = clx + lx, cly + ly
        w, h = min(rx, w) - lx, min(ry, h) - ly
    lm = lm * scale - [x0, y0]
    return (lm * [size / max(w, 1), size / max(h, 1)]).astype(np.float32)

"""5-point alignment of the face crop for the 3DMM regressor.

An affine camera is fitted (float64 least squares) between five landmarks of the crop and a standard
3D template; the crop is then scaled with PIL bicubic and cut to 224 x 224 (zero fill outside).
The integer truncations of the original (``astype(int32)``) are reproduced exactly: they decide
which pixels the network sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ALIGNED_SIZE = 224
RESCALE_FACTOR = 102.0

# The 5-point standard face of Deep3DFaceRecon (from BFM's similarity_Lm3D_all.mat: left-eye centre,
# right-eye centre, nose tip, left and right mouth corners), exact float64 values.
LM3D_STD = np.array(
    [
        (-0.3114865720272064, 0.29036077857017517, 0.13377952575683594),
        (0.30979886651039124, 0.289720356464386, 0.1317952573299408),
        (0.003253498813137412, -0.04617932438850403, 0.5524424314498901),
        (-0.25216928124427795, -0.3813391625881195, 0.22405731678009033),
        (0.24846619367599487, -0.38128235936164856, 0.22235769033432007),
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class Alignment:
    """The 224 x 224 network view of a crop and the transform that produced it."""

    aligned: np.ndarray  # (224, 224, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) or (5, 2) float64, in the aligned image (y up)
    trans_params: np.ndarray  # (5,) float64: W, H, s, tx, ty


def flip_y(lm68: np.ndarray, height: int) -> np.ndarray:
    """Image landmarks (y down) to the y-up convention of the alignment, in float32 as the original."""
    lm = np.array(lm68, dtype=np.float32, copy=True)
    lm[:, -1] = height - 1 - lm[:, -1]
    return lm


def five_points(lm: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from 68 landmarks (a 5-point input passes through)."""
    if lm.shape[0] == 5:
        return lm
    return np.stack(
        [
            np.mean(lm[[36, 39]], 0),
            np.mean(lm[[42, 45]], 0),
            lm[30],
            lm[48],
            lm[54],
        ],
        axis=0,
    )


def fit_camera(lm5: np.ndarray, lm3d: np.ndarray) -> tuple[np.ndarray, np.float64]:
    """Translation t (2, 1) and scale s of the affine camera mapping the template onto the 5 points."""
    n = lm5.shape[0]
    design = np.zeros((2 * n, 8))
    design[0::2, 0:3] = lm3d
    design[0::2, 3] = 1
    design[1::2, 4:7] = lm3d
    design[1::2, 7] = 1
    target = np.reshape(lm5, (2 * n, 1))  # u0, v0, u1, v1, ...
    k = np.linalg.lstsq(design, target, rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.stack([k[3], k[7]], axis=0), scale


def align_image(image: Image.Image | np.ndarray, lm: np.ndarray, lm3d: np.ndarray = LM3D_STD) -> Alignment:
    """Scale and cut the crop so the face fits the template (``lm`` in y-up coordinates)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    w0, h0 = image.size
    t, s = fit_camera(five_points(lm), lm3d)
    s = RESCALE_FACTOR / s

    half = ALIGNED_SIZE / 2
    w = (w0 * s).astype(np.int32)
    h = (h0 * s).astype(np.int32)
    left = (w / 2 - half + float(((t[0] - w0 / 2) * s)[0])).astype(np.int32)
    up = (h / 2 - half + float(((h0 / 2 - t[1]) * s)[0])).astype(np.int32)
    scaled = image.resize((int(w), int(h)), resample=Image.BICUBIC)
    aligned = scaled.crop((int(left), int(up), int(left) + ALIGNED_SIZE, int(up) + ALIGNED_SIZE))

    moved = np.stack([lm[:, 0] - t[0] + w0 / 2, lm[:, 1] - t[1] + h0 / 2], axis=1) * s
    moved = moved - np.reshape(np.array([w / 2 - half, h / 2 - half]), [1, 2])
    trans = np.array([w0, h0, s, t[0, 0], t[1, 0]], dtype=np.float64)
    return Alignment(np.asarray(aligned.convert("RGB"), dtype=np.uint8), moved, trans)


def template_landmarks(width: int, height: int) -> np.ndarray:
    """The original's stand-in when no landmarks exist: the template's x, y spread over the image."""
    lm = (LM3D_STD[:, :2] + 1) / 2.0
    return np.concatenate([lm[:, :1] * width, lm[:, 1:2] * height], 1)


def network_input(aligned: np.ndarray) -> np.ndarray:
    """(1, 3, 224, 224) float32: uint8 / 255 in float64, then cast (no mean/std normalisation)."""
    return np.ascontiguousarray((np.asarray(aligned) / 255.0).astype(np.float32).transpose(2, 0, 1)[None])

"""Per-frame face restoration as SadTalker runs it (GFPGANer.enhance with upscale 2), in our own code.

Steps (GFPGAN 1.3.8's GFPGANer with facexlib): find the face's 5 landmarks; similarity transform to the FFHQ 512
template (``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)``); warp the 512 crop (border value
(135,133,132)); GFPGAN v1.4 on RGB in [-1,1]; basicsr ``tensor2img``; paste back into a 2x canvas with
the inverse affine (x2, +1.0 translation as GFPGANer adds 0.5*upscale) and a soft mask; the canvas is
the frame upscaled by Lanczos x2, or by Real-ESRGAN x2 when the background enhancer is on.

Where we differ from GFPGANer, and why:
- Detector: GFPGANer uses facexlib's RetinaFace-ResNet50 (``detection_Resnet50_Final.pth``), which we
  neither ship nor can check. Our frames are renders of a face whose landmarks the pipeline already
  measured, so the caller passes a ``face_hint`` (5 or 68 points in frame coordinates). Each frame then
  refines it with dlib's 68-point shape predictor started from the box the hint implies (the box is
  placed with a calibration of dlib's box in the FFHQ template frame); a refinement that drifts more than
  ``MAX_DRIFT`` eye distances from the hint is discarded and the hint itself is used. Without a hint the
  face package's landmark backend (dlib HOG + 68 points, or face-alignment) detects the largest face; a
  frame where it finds none passes through, upscaled only, and is counted. 5 points are made from 68 as
  the eye centres (mean of points 36-41 / 42-47), the nose tip (30) and the mouth corners (48, 54).
- Mask: GFPGANer's mask comes from facexlib's ParseNet (``parsing_parsenet.pth``, not available). We
  build the same kind of mask in the aligned 512 frame from the 68-point face hull instead (jaw line plus
  the eyebrows raised by a quarter of the brow-to-chin height to cover the forehead, the region the parse
  classes keep), then apply GFPGANer's exact mask post-processing: two Gaussian blurs (101x101, sigma 11),
  a zeroed 10 px border, /255, the inverse warp with flags=3, and ``mask*face + (1-mask)*background``
  truncated to uint8. Hair, neck and the crop's background stay from the upscaled frame, as with ParseNet.
- Noise: GFPGANer draws fresh noise from torch's global RNG at each call; ours is drawn from a generator
  seeded by (job seed, frame index), so a retried chunk reproduces its frames exactly.
- Several faces: GFPGANer restores every detected face; our frames hold one rendered face, so we
  restore one (the hint's, or the largest).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

FACE_SIZE = 512
UPSCALE = 2
BORDER_VALUE = (135, 133, 132)
# facexlib's FFHQ 512 template (x, y): left eye, right eye, nose, left and right mouth corner.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
# Where dlib's HOG detector puts its (square) box, in the FFHQ template frame: measured on the parity
# kit's astronaut photo (box (175,76)-(266,167) maps to about (101,174)-(389,435)).
DLIB_BOX_CENTER_T, DLIB_BOX_SIDE_T = np.array([245.0, 305.0]), 275.0
# A hint refinement that moves any of the 5 points further than this many eye distances is rejected.
MAX_DRIFT = 0.35
# dlib's 68 points of the same photo in the template frame: the mask shape when only 5 points are known.
CANONICAL_LM68_T = np.array(
    [[117, 258], [122, 294], [126, 327], [131, 363], [142, 396], [161, 425], [190, 448], [218, 471], [252, 475],
     [288, 471], [320, 451], [349, 425], [369, 397], [382, 363], [390, 326], [394, 293], [398, 256], [137, 227],
     [154, 208], [178, 204], [202, 209], [227, 216], [287, 216], [311, 209], [335, 208], [360, 210], [376, 230],
     [259, 245], [257, 272], [258, 297], [259, 321], [227, 334], [242, 340], [257, 342], [272, 338], [287, 334],
     [165, 247], [180, 237], [201, 236], [217, 253], [199, 254], [177, 255], [292, 256], [310, 237], [331, 236],
     [347, 250], [332, 257], [314, 258], [189, 360], [213, 359], [240, 358], [258, 363], [276, 359], [300, 358],
     [325, 360], [302, 391], [275, 405], [254, 409], [236, 407], [211, 393], [198, 366], [240, 370], [256, 372],
     [277, 368], [316, 363], [275, 390], [257, 393], [238, 391]],
    dtype=np.float64,
)  # fmt: skip


@dataclass(frozen=True)
class FoundFace:
    pts5: np.ndarray  # (5, 2) float64, frame coordinates
    lm68: np.ndarray | None  # (68, 2) float64 or None
    source: str  # "refined" | "hint" | "detected"


# --- landmarks ------------------------------------------------------------------------------------
def five_from_68(lm68: np.ndarray) -> np.ndarray:
    lm = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def hint_points(face_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(5 points, 68 points or None) of a 5- or 68-point hint."""
    h = np.asarray(face_hint, dtype=np.float64)
    if h.shape == (68, 2):
        return five_from_68(h), h
    if h.shape == (5, 2):
        return h, None
    raise ValueError(f"face_hint must be (5, 2) or (68, 2) points, got {h.shape}")


def _dlib_predictor_path() -> Path:
    # Located without importing face_recognition_models (its __init__ needs pkg_resources).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        from ..errors import WeightsMissing

        raise WeightsMissing("the face_recognition_models package (dlib's 68-point landmark model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"


@lru_cache(maxsize=1)
def _dlib_predictor():
    import dlib

    return dlib.shape_predictor(str(_dlib_predictor_path()))


def alignable(pts5: np.ndarray) -> bool:
    """True when the 5 points define a usable similarity transform to the template."""
    pts = np.asarray(pts5, dtype=np.float64)
    if not np.isfinite(pts).all() or np.linalg.norm(pts[1] - pts[0]) < 1:
        return False
    M = cv2.estimateAffinePartial2D(pts, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    return M is not None and abs(np.linalg.det(M[:, :2])) > 1e-6


def box_from_five(pts5: np.ndarray) -> tuple[int, int, int, int]:
    """The square box dlib's detector would give the face whose 5 points are ``pts5``."""
    M = cv2.estimateAffinePartial2D(pts5, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    inv = cv2.invertAffineTransform(M)
    centre = inv[:, :2] @ DLIB_BOX_CENTER_T + inv[:, 2]
    side = DLIB_BOX_SIDE_T * float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    x0, y0 = centre - side / 2
    return int(round(x0)), int(round(y0)), int(round(x0 + side)), int(round(y0 + side))


def refine_hint(frame_rgb: np.ndarray, face_hint: np.ndarray) -> FoundFace:
    """dlib's shape predictor started at the hint's box; falls back to the hint when it drifts."""
    import dlib

    pts5, lm68 = hint_points(face_hint)
    if not alignable(pts5):
        return FoundFace(pts5, lm68, "hint")  # the caller counts it as no face
    x0, y0, x1, y1 = box_from_five(pts5)
    shape = _dlib_predictor()(np.ascontiguousarray(frame_rgb), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    refined = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    r5 = five_from_68(refined)
    eye = float(np.linalg.norm(pts5[1] - pts5[0]))
    if eye > 0 and float(np.linalg.norm(r5 - pts5, axis=1).max()) <= MAX_DRIFT * eye:
        return FoundFace(r5, refined, "refined")
    return FoundFace(pts5, lm68, "hint")


def detect_face(frame_rgb: np.ndarray, backend) -> FoundFace | None:
    """The largest face found by a landmark backend (``find(image) -> obj with .lm68`` or None)."""
    found = backend.find(frame_rgb)
    if found is None:
        return None
    lm = np.asarray(found.lm68, dtype=np.float64)
    pts5 = five_from_68(lm)
    if np.linalg.norm(pts5[1] - pts5[0]) < 5:  # GFPGANer's eye_dist_threshold
        return None
    return FoundFace(pts5, lm, "detected")


# --- alignment, network I/O, mask, paste-back -----------------------------------------------------
def align_face(img_bgr: np.ndarray, pts5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """facexlib's align_warp_face: (512x512x3 uint8 crop, 2x3 affine frame -> crop)."""
    M = cv2.estimateAffinePartial2D(np.asarray(pts5, np.float64), FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    crop = cv2.warpAffine(
        img_bgr, M, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_VALUE
    )
    return crop, M


def face_to_tensor(crop_bgr: np.ndarray) -> torch.Tensor:
    """GFPGANer's input: /255, BGR->RGB, (v-0.5)/0.5, 1x3xHxW float32."""
    v = crop_bgr.astype(np.float32) / np.float32(255.0)
    v = np.ascontiguousarray(v[:, :, ::-1].transpose(2, 0, 1))
    return ((torch.from_numpy(v) - 0.5) / 0.5).unsqueeze(0)


def tensor_to_face(out: torch.Tensor) -> np.ndarray:
    """basicsr tensor2img(out, rgb2bgr=True, min_max=(-1, 1)) -> HxWx3 uint8 BGR."""
    v = out[0].float().clamp(-1, 1)
    v = ((v + 1) / 2).numpy().transpose(1, 2, 0)[:, :, ::-1]
    return np.ascontiguousarray((v * np.float32(255.0)).round().astype(np.uint8))


def face_mask_512(lm68_aligned: np.ndarray | None) -> np.ndarray:
    """Soft face mask (512x512 float64 in [0,1]) in the aligned frame, post-processed as GFPGANer's."""
    lm = CANONICAL_LM68_T if lm68_aligned is None else np.asarray(lm68_aligned, dtype=np.float64)
    jaw, brows = lm[0:17], lm[17:27]
    lift = 0.25 * max(float(lm[8, 1] - brows[:, 1].mean()), 0.0)
    poly = np.concatenate([jaw, brows - [0.0, lift]])
    hull = cv2.convexHull(np.round(poly).astype(np.int32))
    mask = np.zeros((FACE_SIZE, FACE_SIZE), dtype=np.float64)
    cv2.fillConvexPoly(mask, hull, 255.0)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    t = 10
    mask[:t, :] = 0
    mask[-t:, :] = 0
    mask[:, :t] = 0
    mask[:, -t:] = 0
    return mask / 255.0


def paste_faces(
    img_bgr: np.ndarray,
    faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    background_bgr: np.ndarray | None,
    upscale: int = UPSCALE,
) -> np.ndarray:
    """GFPGANer's paste_faces_to_input_image. ``faces``: (restored 512 BGR u8, affine 2x3, mask 512 float)."""
    h, w = img_bgr.shape[:2]
    h_up, w_up = int(h * upscale), int(w * upscale)
    base = img_bgr if background_bgr is None else background_bgr
    canvas = cv2.resize(base, (w_up, h_up), interpolation=cv2.INTER_LANCZOS4)
    for restored, affine, mask in faces:
        inv = cv2.invertAffineTransform(affine) * upscale
        if upscale > 1:
            inv[:, 2] += 0.5 * upscale
        inv_restored = cv2.warpAffine(restored, inv, (w_up, h_up))
        m = cv2.resize(mask, restored.shape[:2])
        m = cv2.warpAffine(m, inv, (w_up, h_up), flags=3)[:, :, None]
        canvas = m * inv_restored + (1 - m) * canvas
    return canvas.astype(np.uint8)


def transform_points(pts: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ affine[:, :2].T + affine[:, 2]


def restore_frame(
    frame_rgb: np.ndarray,
    face: FoundFace | None,
    gfpgan: torch.nn.Module,
    generator: torch.Generator | None,
    background=None,
) -> np.ndarray:
    """One RGB uint8 frame -> RGB uint8 frame at twice the size. ``background(img_bgr) -> bgr`` upscales
    the canvas (None: Lanczos). ``face=None`` means no face: the frame is only upscaled."""
    img = np.ascontiguousarray(frame_rgb[:, :, ::-1])
    faces = []
    if face is not None:
        crop, M = align_face(img, face.pts5)
        with torch.inference_mode():
            out, _ = gfpgan(face_to_tensor(crop), randomize_noise=True, generator=generator)
        lm_aligned = None if face.lm68 is None else transform_points(face.lm68, M)
        faces.append((tensor_to_face(out), M, face_mask_512(lm_aligned)))
    bg = background(img) if background is not None else None
    return np.ascontiguousarray(paste_faces(img, faces, bg)[:, :, ::-1])

"""Per-frame coefficients of a reference video (ref_eyeblink / ref_pose).

As in the original, ONE crop is used for the whole video: it is computed from the first frame that
shows a face and applied to every frame, so head motion inside the picture stays visible in the
pose/translation coefficients (a per-frame crop would follow the head and hide it). Landmarks and
coefficients are then computed per frame on the 256 px crop (the original's reference size).
Frames where no face is found on the crop are filled by linear interpolation between the nearest
frames that have one (held at the ends) and counted. A video without any face is NoFaceDetected.

Output: (N, 70) float32 = exp 64 | angle 3 | trans 3 per frame. Frames are decoded one at a time
with imageio-ffmpeg's binary; at most ``max_frames`` are used (frames beyond the longest accepted
speech are never needed: the reference is cut to the clip length).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidImage, NoFaceDetected
from ..nets.face_recon import FaceReconNet
from .align import align_image, flip_y, network_input
from .crop import CropGeometry, crop_face, crop_geometry
from .landmarks import LandmarkBackend
from .limits import DEFAULT_LIMITS, MAX_VIDEO_BYTES, ImageLimits, video_format
from .reconstruct import BATCH, coeff_3dmm_from, regress
from .video_frames import VideoFrames

REFERENCE_SIZE = 256  # the original always processes reference videos at 256 px


@dataclass(frozen=True)
class ReferenceCoefficients:
    coeffs: np.ndarray  # (N, 70) float32
    fps: float
    filled_frames: int
    crop: CropGeometry

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            "coeffs": self.coeffs.astype(np.float32),
            "num_frames": np.int64(len(self.coeffs)),
            "filled_frames": np.int64(self.filled_frames),
            "fps": np.float64(self.fps),
        }


def _fill_missing(rows: list[np.ndarray | None]) -> tuple[np.ndarray, int]:
    """Linear interpolation over frames without a face, ends held; returns (array, how many filled)."""
    have = [i for i, r in enumerate(rows) if r is not None]
    out = np.zeros((len(rows), 70), dtype=np.float32)
    for i in have:
        out[i] = rows[i]
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        idx = np.asarray(have)
        for col in range(70):
            out[missing, col] = np.interp(missing, idx, out[idx, col])
    return out, len(missing)


def reference_coefficients(
    data: bytes,
    name: str,
    mode: str,
    backend: LandmarkBackend,
    net: FaceReconNet,
    max_frames: int,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ReferenceCoefficients:
    """Decode ``data`` (an mp4/mov/webm video) and compute its per-frame (N, 70) coefficients."""
    what = f"the reference video {os.path.basename(name)!r}"
    if not data:
        raise InvalidImage(f"{what} is empty")
    if len(data) > MAX_VIDEO_BYTES:
        raise InvalidImage(f"{what} is {len(data)} bytes; videos up to {MAX_VIDEO_BYTES} bytes are accepted")
    fmt = video_format(data)
    if fmt is None:
        raise InvalidImage(f"{what} is not a video format that can be read (mp4, mov, webm, mkv, avi)")
    with tempfile.TemporaryDirectory(prefix="sadtalker-ref-") as tmp:
        path = os.path.join(tmp, "reference.video")
        with open(path, "wb") as fh:
            fh.write(data)

        # Pass 1: the first frame with a face fixes the crop (usually frame 0: ffmpeg stops right there).
        geom = None
        with VideoFrames(path, what, limits, max_frames=max_frames, input_format=fmt) as frames:
            for frame in frames:
                found = backend.find(frame)
                if found is not None:
                    geom = crop_geometry(found.lm68, (frame.shape[1], frame.shape[0]), mode)
                    break
        if geom is None:
            raise NoFaceDetected(f"no face was found in any frame of {what}")

        # Pass 2: every frame through the same crop, landmarks and the regressor (batched).
        rows: list[np.ndarray | None] = []
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (row, net input, trans params)
        fps = 0.0

        def flush() -> None:
            full = regress(net, [p[1] for p in pending])
            coeffs = coeff_3dmm_from(full, np.stack([p[2] for p in pending]))
            for (row, _, _), c in zip(pending, coeffs, strict=True):
                rows[row] = c[:70]
            pending.clear()

        with VideoFrames(path, what, limits, max_frames=max_frames, input_format=fmt) as frames:
            fps = frames.fps
            for frame in frames:
                crop = crop_face(frame, geom, REFERENCE_SIZE)
                found = backend.find(crop)
                rows.append(None)
                if found is None:
                    continue
                aligned = align_image(crop, flip_y(found.lm68, crop.shape[0]))
                pending.append((len(rows) - 1, network_input(aligned.aligned), aligned.trans_params))
                if len(pending) >= BATCH:
                    flush()
        if pending:
            flush()
    if not any(r is not None for r in rows):
        raise NoFaceDetected(f"no face was found in any frame of {what} after cropping")
    coeffs, filled = _fill_missing(rows)
    return ReferenceCoefficients(coeffs, fps, filled, geom)

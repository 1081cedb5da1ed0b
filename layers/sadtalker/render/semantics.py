"""Motion preparation: SadTalker's ``get_facerender_data`` + ``keypoint_transformation`` in our own code.

A clip's coefficient sequence (T, 70) becomes per-frame 27-frame windows
(radius 13, clamped at the CLIP ends, so a chunk's windows equal the whole clip's), optionally with the
head-pose override sequences. Decisions:
- ``params.input_yaw/pitch/roll`` are always applied, as the seed project passes its defaults ([0]) through
  to SadTalker: the default renders the driving head at yaw = pitch = roll = 0 degrees.
- A pose list with equal neighbours (e.g. [0, 0]) crashes the original (division by zero); here such a pair
  contributes no ramp. A one-frame clip uses the first value (the original divides by T - 1 = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidCoefficients
from ..params import JobParams

SEMANTIC_RADIUS = 13
WINDOW = 2 * SEMANTIC_RADIUS + 1
NUM_BINS = 66


@dataclass(frozen=True)
class MotionInputs:
    """Everything the renderer needs to drive a clip, independent of chunking.

    ``coeffs`` (T, C) float32 after expression_scale / full-mode append / still mode; ``source`` (C,)
    the source semantics; ``yaw``/``pitch``/``roll`` (T,) float32 degree overrides or None.
    """

    coeffs: np.ndarray
    source: np.ndarray
    yaw: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.coeffs.shape[0])

    def source_window(self) -> np.ndarray:
        """(C, 27): the source coefficients repeated over a window."""
        return source_window(self.source)

    def target_windows(self, start: int, end: int) -> np.ndarray:
        """(end - start, C, 27) windows of frames [start, end), clamped at the clip ends."""
        return target_windows(self.coeffs, np.arange(start, end))

    def pose_overrides(self, start: int, end: int) -> dict[str, np.ndarray]:
        out = {}
        for name in ("yaw", "pitch", "roll"):
            seq = getattr(self, name)
            if seq is not None:
                out[name] = seq[start:end]
        return out


def source_window(source: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(source, np.float32).reshape(-1, 1), WINDOW, axis=1)


def target_windows(coeffs: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Window of frame i = rows i-13 .. i+13 clamped to [0, T-1], transposed -> (N, C, 27)."""
    offsets = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)
    idx = np.clip(np.asarray(frames)[:, None] + offsets[None, :], 0, coeffs.shape[0] - 1)
    return np.ascontiguousarray(coeffs[idx].transpose(0, 2, 1))


def prepare_coefficients(
    coeffs: np.ndarray, source_3dmm: np.ndarray, *, expression_scale: float, still: bool, full_mode: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 70) generated coefficients + (73,) source -> (T, C) driving and (C,) source semantics."""
    coeffs = np.asarray(coeffs)
    source_3dmm = np.asarray(source_3dmm, np.float32).reshape(-1)
    if coeffs.ndim != 2 or coeffs.shape[1] != 70 or coeffs.shape[0] < 1:
        raise InvalidCoefficients(f"the coefficient sequence has shape {coeffs.shape}, expected (frames, 70)")
    if source_3dmm.shape[0] != 73:
        raise InvalidCoefficients(f"the source coefficients have {source_3dmm.shape[0]} values, expected 73")
    if not np.isfinite(coeffs).all() or not np.isfinite(source_3dmm).all():
        raise InvalidCoefficients("the coefficient sequence contains NaN or infinite values")
    channels = 73 if full_mode else 70
    source = source_3dmm[:channels].copy()
    gen = coeffs[:, :70].astype(np.float32, copy=True)
    gen[:, :64] = gen[:, :64] * expression_scale  # float32 times a Python float stays float32
    if full_mode:
        gen = np.concatenate([gen, np.repeat(source[None, 70:], gen.shape[0], axis=0)], axis=1)
    if still:
        gen[:, 64:] = source[None, 64:]
    return gen, source


def camera_pose_sequence(degrees: list[int] | tuple[int, ...], num_frames: int) -> np.ndarray:
    """SadTalker's ``gen_camera_pose`` without the batch padding: (T,) float32 degrees."""
    values = [int(v) for v in degrees]
    if len(values) == 1 or num_frames == 1:
        return np.full(num_frames, values[0], np.float32)
    total = 0.0
    for prev, cur in zip(values[:-1], values[1:], strict=True):
        total += abs(cur - prev)
    per_frame = total / (num_frames - 1)
    seq: list[float] = []
    for prev, cur in zip(values[:-1], values[1:], strict=True):
        if cur == prev:
            continue
        step = per_frame * abs(cur - prev) / (cur - prev)
        seq += list(np.arange(prev, cur, step))
    if not seq:
        seq = [values[0]]
    seq = seq[:num_frames] + [seq[-1]] * max(0, num_frames - len(seq))
    return np.asarray(seq, dtype=np.float64).astype(np.float32)


def prepare_motion(coeffs: np.ndarray, source_3dmm: np.ndarray, params: JobParams) -> MotionInputs:
    gen, source = prepare_coefficients(
        coeffs, source_3dmm, expression_scale=params.expression_scale, still=params.still, full_mode=params.full_mode
    )
    t = gen.shape[0]
    return MotionInputs(
        coeffs=gen,
        source=source,
        yaw=camera_pose_sequence(params.input_yaw, t) if params.input_yaw else None,
        pitch=camera_pose_sequence(params.input_pitch, t) if params.input_pitch else None,
        roll=camera_pose_sequence(params.input_roll, t) if params.input_roll else None,
    )


def batch_like_original(per_frame: np.ndarray, batch_size: int) -> np.ndarray:
    """The original's batching: pad with the last item to a multiple of batch_size, reshape (bs, L, ...).

    Only used to compare with the goldens; our renderer batches consecutive frames instead.
    """
    n = per_frame.shape[0]
    pad = (-n) % batch_size
    if pad:
        per_frame = np.concatenate([per_frame, np.repeat(per_frame[-1:], pad, axis=0)], axis=0)
    return per_frame.reshape(batch_size, -1, *per_frame.shape[1:])


# --- keypoint transformation (section 9) --------------------------------------------------------------
def pose_degrees(logits: torch.Tensor) -> torch.Tensor:
    """3 * sum_k softmax(logits)_k * k - 99 (66 bins)."""
    idx = torch.arange(logits.shape[1], dtype=logits.dtype)
    return torch.sum(F.softmax(logits, dim=1) * idx, 1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """R = P(pitch) Y(yaw) R(roll) from degrees; radians use 3.14 (original quirk). (B, 3, 3)."""
    yaw = (yaw / 180 * 3.14).unsqueeze(1)
    pitch = (pitch / 180 * 3.14).unsqueeze(1)
    roll = (roll / 180 * 3.14).unsqueeze(1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    p = torch.cat([one, zero, zero, zero, torch.cos(pitch), -torch.sin(pitch), zero, torch.sin(pitch), torch.cos(pitch)], 1)
    y = torch.cat([torch.cos(yaw), zero, torch.sin(yaw), zero, one, zero, -torch.sin(yaw), zero, torch.cos(yaw)], 1)
    r = torch.cat([torch.cos(roll), -torch.sin(roll), zero, torch.sin(roll), torch.cos(roll), zero, zero, zero, one], 1)
    b = yaw.shape[0]
    return torch.einsum("bij,bjk,bkm->bim", p.view(b, 3, 3), y.view(b, 3, 3), r.view(b, 3, 3))


@dataclass
class TransformedKeypoints:
    """Degrees actually used (predicted, or the override), rotation (B, 3, 3), keypoints (B, K, 3)."""

    yaw_deg: torch.Tensor
    pitch_deg: torch.Tensor
    roll_deg: torch.Tensor
    rot: torch.Tensor
    kp: torch.Tensor


def transform_keypoints(
    kp_canonical: torch.Tensor,
    motion,  # nets.mapping.HeadMotion
    yaw_in: torch.Tensor | None = None,
    pitch_in: torch.Tensor | None = None,
    roll_in: torch.Tensor | None = None,
) -> TransformedKeypoints:
    """kp = R kp_canonical + (0, t_y, 0) + exp. kp_canonical (1 or B, K, 3) broadcasts over the batch."""
    yaw = pose_degrees(motion.yaw) if yaw_in is None else yaw_in
    pitch = pose_degrees(motion.pitch) if pitch_in is None else pitch_in
    roll = pose_degrees(motion.roll) if roll_in is None else roll_in
    rot = rotation_matrix(yaw, pitch, roll)
    b = rot.shape[0]
    kp = kp_canonical.expand(b, *kp_canonical.shape[1:])
    rotated = torch.einsum("bmp,bkp->bkm", rot, kp)
    t = motion.t.clone()  # the original zeroes x and z in place on the mapping output; we keep ours intact
    t[:, 0] = t[:, 0] * 0
    t[:, 2] = t[:, 2] * 0
    out = rotated + t.unsqueeze(1) + motion.exp.view(b, -1, 3)
    return TransformedKeypoints(yaw, pitch, roll, rot, out)

"""Audio -> per-frame motion coefficients, SadTalker's Audio2Coeff.

Inputs are arrays: the per-frame mel windows, the source face's first 70 coefficients, optional
reference-video coefficient sequences (N, 70). Output: ``coeffs`` (T, 70) float32 = expression (64) |
savgol-smoothed pose (6) [+ relative reference pose], before expression_scale / still mode, which the
renderer applies (as SadTalker's get_facerender_data does).

Randomness: the blink sequence draws from ``random.Random(seed)`` with the original algorithm, the pose
latents from a ``torch.Generator`` seeded with the same seed; both can be injected instead. With
``blink seed 1234`` and ``pose seed 100 + pose_style`` this reproduces the parity kit's recorded draws.

Still mode is not applied here: SadTalker's current ``get_data`` keeps the blink ratio in still mode
and zeroes it only when ``use_blink`` is False (the demo's blink toggle, ``use_blink`` here too); the
renderer replaces the pose columns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .errors import InvalidCoefficients
from .nets.audio2exp import Audio2Exp
from .nets.audio2pose import Audio2Pose, NoiseSource
from .weights import ModelStore, load_strict
from .weights.checkpoints import locate_module

EXP_DIM = 64
COEFF_DIM = 70
BLINK_SHAPE = (0.5, 0.9, 1.0, 0.9, 0.5)
SAVGOL_WINDOW = 13
SAVGOL_ORDER = 2


# --- blinks and reference sequences ----------------------------------------------------------------
def blink_ratio(num_frames: int, rng: random.Random) -> np.ndarray:
    """(T, 1) float32 eye-blink ratio: 5-frame blinks at random gaps of 10 .. min(T/2, 70)-1 frames."""
    ratio = np.zeros((num_frames, 1), dtype=np.float64)
    if num_frames <= 20:
        return ratio.astype(np.float32)
    frame_id = 0
    while frame_id in range(num_frames):
        start = rng.choice(range(min(10, num_frames), min(int(num_frames / 2), 70)))
        if frame_id + start + 5 <= num_frames - 1:
            ratio[frame_id + start : frame_id + start + 5, 0] = BLINK_SHAPE
            frame_id = frame_id + start + 5
        else:
            break
    return ratio.astype(np.float32)


def tile_to_length(seq: np.ndarray, num_frames: int) -> np.ndarray:
    """Repeat a (N, C) sequence whole times plus a remainder to cover ``num_frames`` rows, then cut."""
    seq = np.asarray(seq)
    n = seq.shape[0]
    if n < num_frames:
        div, re = divmod(num_frames, n)
        seq = np.concatenate([seq] * div + [seq[:re]], axis=0)
    return seq[:num_frames]


def check_ref_coeffs(coeffs: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(coeffs)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < COEFF_DIM or not np.isfinite(arr).all():
        raise InvalidCoefficients(
            f"{what} coefficients must be a finite (N, 70) array with N >= 1, got shape {tuple(arr.shape)}"
        )
    return arr[:, :COEFF_DIM].astype(np.float32)


def reference_sequence(source70: np.ndarray, num_frames: int, ref_eyeblink: np.ndarray | None = None) -> np.ndarray:
    """(T, 70) reference: the source repeated; with a blink reference its expression columns replaced."""
    ref = np.repeat(np.asarray(source70, dtype=np.float32).reshape(1, COEFF_DIM), num_frames, axis=0)
    if ref_eyeblink is not None:
        ref[:, :EXP_DIM] = tile_to_length(check_ref_coeffs(ref_eyeblink, "reference eye-blink")[:, :EXP_DIM], num_frames)
    return ref


def apply_ref_pose(coeffs: np.ndarray, ref_pose: np.ndarray) -> np.ndarray:
    """Add the reference video's head motion relative to its first frame to the pose columns."""
    num_frames = coeffs.shape[0]
    pose = check_ref_coeffs(ref_pose, "reference pose")[:, EXP_DIM:COEFF_DIM]
    pose = tile_to_length(pose, num_frames)
    out = coeffs.copy()
    out[:, EXP_DIM:COEFF_DIM] = out[:, EXP_DIM:COEFF_DIM] + (pose[:num_frames] - pose[0:1])
    return out


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky-Golay (13, order 2) along time of a (B, T, 6) array; shorter clips use the largest odd
    window that fits. Fewer than 3 frames cannot carry an order-2 fit: left as is (the original fails)."""
    from scipy.signal import savgol_filter

    t = pose.shape[1]
    window = SAVGOL_WINDOW if t >= SAVGOL_WINDOW else int((t - 1) / 2) * 2 + 1
    if window <= SAVGOL_ORDER:
        return pose.copy()
    return savgol_filter(pose, window, SAVGOL_ORDER, axis=1)


# --- networks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioModels:
    audio2exp: Audio2Exp
    audio2pose: Audio2Pose
    files: tuple[str, ...]  # checkpoint file names they came from (for cache keys and messages)


def build_audio_models(models: ModelStore, size: int = 256) -> AudioModels:
    """Build both nets and load the official modules strictly from whatever layout the store has."""
    exp_net, pose_net = Audio2Exp(), Audio2Pose()
    files = []
    for net, module in ((exp_net, "audio2exp"), (pose_net, "audio2pose")):
        fname = locate_module(models.root, module, size).path.name
        load_strict(net, models.state_dict(module, size), filename=fname, module=module)
        net.eval()
        net.requires_grad_(False)
        files.append(fname)
    return AudioModels(exp_net, pose_net, tuple(files))


@lru_cache(maxsize=4)
def load_audio_models(models: ModelStore, size: int = 256) -> AudioModels:
    """Memoized ``build_audio_models``: a warm container loads the audio nets once per store/size."""
    return build_audio_models(models, size)


# --- generation ------------------------------------------------------------------------------------
@dataclass
class CoefficientResult:
    coeffs: np.ndarray  # (T, 70) float32: exp | smoothed pose (+ reference pose motion)
    exp: np.ndarray  # (T, 64) float32
    pose_raw: np.ndarray  # (T, 6) float32, before smoothing
    pose_motion: np.ndarray  # (T, 6) float32, pose_raw minus the source pose (frame 0 is zero)
    ratio: np.ndarray  # (T, 1) float32 blink ratio fed to audio2exp
    noises: list[np.ndarray]  # pose latents used, in draw order


@torch.no_grad()
def predict_expression(net: Audio2Exp, indiv_mels: np.ndarray, ref: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """(T, 80, 16) windows, (T, 70) reference, (T, 1) ratio -> (T, 64) expression."""
    mels = torch.from_numpy(np.ascontiguousarray(indiv_mels, dtype=np.float32))[None, :, None]
    ref_exp = torch.from_numpy(np.ascontiguousarray(ref[:, :EXP_DIM], dtype=np.float32))[None]
    r = torch.from_numpy(np.ascontiguousarray(ratio, dtype=np.float32))[None]
    return net(mels, ref_exp, r)[0].numpy()


def generate_coefficients(
    nets: AudioModels,
    indiv_mels: np.ndarray,
    source70: np.ndarray,
    *,
    pose_style: int = 0,
    seed: int | None = None,
    blink: np.ndarray | None = None,
    noise: NoiseSource | None = None,
    ref_eyeblink: np.ndarray | None = None,
    ref_pose: np.ndarray | None = None,
    use_blink: bool = True,
) -> CoefficientResult:
    """The per-frame coefficient sequence of a clip.

    ``blink`` (T, 1) and ``noise`` (list of (1, 64) tensors) override the seeded draws; otherwise
    ``seed`` is required. ``ref_eyeblink`` / ``ref_pose`` are reference-video coefficient sequences (N, 70).
    """
    indiv_mels = np.asarray(indiv_mels)
    if indiv_mels.ndim != 3 or indiv_mels.shape[1:] != (80, 16) or indiv_mels.shape[0] < 1:
        raise InvalidCoefficients(f"mel windows must be (T, 80, 16) with T >= 1, got {tuple(indiv_mels.shape)}")
    num_frames = indiv_mels.shape[0]
    if (blink is None or noise is None) and seed is None:
        raise ValueError("a seed is needed unless both the blink sequence and the pose noise are given")
    if blink is None:
        blink = blink_ratio(num_frames, random.Random(seed))
    ratio = np.asarray(blink, dtype=np.float32).reshape(num_frames, 1)
    if ref_eyeblink is not None or not use_blink:
        # no drawn blinks: the reference video's own expression carries them, or none are wanted (the
        # sequence is still drawn first so the pose latents see the same random state either way)
        ratio = np.zeros_like(ratio)
    ref = reference_sequence(source70, num_frames, ref_eyeblink)

    exp = predict_expression(nets.audio2exp, indiv_mels, ref, ratio)
    if noise is None:
        noise = torch.Generator().manual_seed(int(seed))
    mels = torch.from_numpy(np.ascontiguousarray(indiv_mels, dtype=np.float32))[None, :, None]
    sample = nets.audio2pose.sample(mels, torch.from_numpy(ref[:1, EXP_DIM:COEFF_DIM].copy()), pose_style, noise)
    pose_raw = sample.pose.numpy()  # (1, T, 6) float32
    pose = smooth_pose(pose_raw).astype(np.float32)
    coeffs = np.concatenate([exp, pose[0]], axis=1).astype(np.float32)
    if ref_pose is not None:
        coeffs = apply_ref_pose(coeffs, ref_pose)
    return CoefficientResult(
        coeffs=coeffs,
        exp=exp,
        pose_raw=pose_raw[0],
        pose_motion=sample.pose_motion[0].numpy(),
        ratio=ratio,
        noises=[z.numpy() for z in sample.noises],
    )

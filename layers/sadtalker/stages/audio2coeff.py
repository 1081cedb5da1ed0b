"""Audio2Coeff stage: ``job.face`` + ``job.audio`` (+ reference coefficients) -> ``job.coeffs`` (npz).

Reads ``job.face:coeff_3dmm`` (1, 73; its first 70 are the source), ``job.audio:indiv_mels`` /
``num_frames``, and when present ``job.ref_coeffs("eyeblink")`` / ``job.ref_coeffs("pose")`` (array
``coeffs`` (N, 70), from the reference videos). A reference the params ask for but that is missing is an
error; a present one is used.

Writes ``job.coeffs``:
- ``coeffs`` (T, 70) float32: expression 64 | savgol-smoothed pose 6 (+ reference pose motion), before
  expression_scale / still / pose overrides (the renderer applies those);
- ``num_frames`` int64, ``seed`` int64 (blinks and pose latents), ``pose_style`` int64;
- ``input_hash`` 0-d unicode: SHA-256 of everything that determines ``coeffs`` (source coefficients,
  mel windows, reference sequences, pose_style, seed, use_blink, the checkpoint files, the algorithm version).
  An existing ``job.coeffs`` with the same hash is kept and the stage returns ``cached=True``.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..coefficients import COEFF_DIM, check_ref_coeffs, generate_coefficients, load_audio_models
from ..errors import InvalidCoefficients
from ..jobs import JobKeys
from ..params import JobParams
from ..storage import Storage
from ..weights import ModelStore
from ..weights.checkpoints import locate_module
from . import MODEL_LOAD_S

# Bump when the generation changes numbers, so cached coefficients of the old code are not reused.
ALGORITHM_VERSION = "audio2coeff-1"


def _checkpoint_identity(models: ModelStore, size: int) -> str:
    parts = []
    for module in ("audio2exp", "audio2pose"):
        path = locate_module(models.root, module, size).path
        st = path.stat()
        parts.append(f"{module}={path.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def input_hash(
    source70: np.ndarray,
    indiv_mels: np.ndarray,
    ref_eyeblink: np.ndarray | None,
    ref_pose: np.ndarray | None,
    pose_style: int,
    seed: int,
    checkpoints: str,
    use_blink: bool = True,
) -> str:
    h = hashlib.sha256()
    h.update(f"{ALGORITHM_VERSION}|style={pose_style}|seed={seed}|blink={use_blink}|{checkpoints}|".encode())
    for name, arr in (("source", source70), ("mels", indiv_mels), ("eyeblink", ref_eyeblink), ("pose", ref_pose)):
        if arr is None:
            h.update(f"{name}:none|".encode())
            continue
        a = np.ascontiguousarray(arr, dtype=np.float32)
        h.update(f"{name}:{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()



def _load_ref(storage: Storage, job: JobKeys, kind: str, requested: bool) -> np.ndarray | None:
    key = job.ref_coeffs(kind)
    if not storage.exists(key):
        if requested:
            raise InvalidCoefficients(f"the reference {kind} coefficients ({key}) are missing; preprocess writes them")
        return None
    data = storage.get_npz(key)
    if "coeffs" not in data:
        raise InvalidCoefficients(f"{key} has no 'coeffs' array")
    return check_ref_coeffs(data["coeffs"], f"reference {kind}")


def audio2coeff(storage: Storage, job: JobKeys, params: JobParams, models: ModelStore) -> dict:
    t0 = time.perf_counter()
    face = storage.require_npz(job.face, "face data")
    audio = storage.require_npz(job.audio, "audio features")
    coeff = np.asarray(face.get("coeff_3dmm", np.zeros((0,))))
    if coeff.ndim != 2 or coeff.shape[0] < 1 or coeff.shape[1] < COEFF_DIM or not np.isfinite(coeff).all():
        raise InvalidCoefficients(f"{job.face}: coeff_3dmm must be a finite (1, 73) array, got {tuple(coeff.shape)}")
    source70 = coeff[0, :COEFF_DIM].astype(np.float32)
    indiv_mels = audio["indiv_mels"]
    num_frames = int(audio["num_frames"])
    if indiv_mels.shape != (num_frames, 80, 16) or num_frames < 1:
        raise InvalidCoefficients(f"{job.audio}: indiv_mels {tuple(indiv_mels.shape)} does not match {num_frames} frames")
    ref_eyeblink = _load_ref(storage, job, "eyeblink", params.ref_eyeblink is not None)
    ref_pose = _load_ref(storage, job, "pose", params.ref_pose is not None)
    seed = params.effective_seed(job.job_id)

    digest = input_hash(
        source70, indiv_mels, ref_eyeblink, ref_pose, params.pose_style, seed, _checkpoint_identity(models, params.size),
        params.use_blink,
    )
    if storage.exists(job.coeffs):
        try:
            cached = str(storage.get_npz(job.coeffs).get("input_hash", ""))
        except (ValueError, OSError, KeyError):  # unreadable leftovers are simply recomputed
            cached = ""
        if cached == digest:
            return {"coeffs_key": job.coeffs, "num_frames": num_frames, "cached": True,
                    "timings": {"total_s": round(time.perf_counter() - t0, 3)}}

    t_load = time.perf_counter()
    nets = load_audio_models(models, params.size)
    t_gen = time.perf_counter()
    result = generate_coefficients(
        nets, indiv_mels, source70, pose_style=params.pose_style, seed=seed,
        ref_eyeblink=ref_eyeblink, ref_pose=ref_pose, use_blink=params.use_blink,
    )  # fmt: skip
    storage.put_npz(
        job.coeffs,
        {
            "coeffs": result.coeffs,
            "num_frames": np.int64(num_frames),
            "seed": np.int64(seed),
            "pose_style": np.int64(params.pose_style),
            "input_hash": np.array(digest),
        },
    )
    t_end = time.perf_counter()
    return {
        "coeffs_key": job.coeffs,
        "num_frames": num_frames,
        "cached": False,
        "timings": {MODEL_LOAD_S: round(t_gen - t_load, 3), "generate_s": round(t_end - t_gen, 3),
                    "total_s": round(t_end - t0, 3)},
    }

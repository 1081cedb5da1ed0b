"""Finalize: the rendered chunks -> outputs/<job>/video.mp4, preview.jpg and result.json.

Inputs: the job record (validated params) and the chunk plan that ValidateJob and PlanChunks wrote,
never recomputed here. Order: chunks in frame order -> paste-back (``paste_back.PasteBack``, built once per job)
-> GFPGAN/RealESRGAN when ``params.enhancer`` (``enhance.enhance_frames``, streaming) -> H.264/AAC
encode (``video.encode_video``) -> preview -> outputs. Frames stream chunk by chunk: memory is bounded
by one chunk plus the encoder's pipe, whatever the clip length.

Atomic outputs: the video is written under ``JobKeys.partial_video`` first and then stored at
``outputs/<job>/video.mp4``; ``result.json`` is written LAST, so its presence means the job succeeded
(the CheckResult state relies on that). Weights made by ``sadtalker weights synthetic`` are flagged in
result.json (``weights.synthetic``) - such videos are pipeline checks, not animations.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..audio.features import FPS
from ..errors import FinalizeFailed, InvalidChunk
from ..jobs import JobKeys, JobRecord
from ..machine import available_cores
from ..params import JobParams
from ..storage import Storage
from ..weights import ModelStore
from .plan_chunks import ChunkPlan

PREVIEW_FRAMES = 8


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _chunk_frames(storage: Storage, job: JobKeys, chunks: list[dict[str, int]], size: int) -> Iterator[np.ndarray]:
    for c in chunks:
        key = job.chunk(c["start"], c["end"])
        try:
            data = storage.get_npz(key)
        except KeyError:
            raise FinalizeFailed(f"render chunk {c['start']}-{c['end']} is missing ({key})") from None
        frames = data.get("frames")
        want = (c["end"] - c["start"], size, size, 3)
        if frames is None or frames.shape != want or frames.dtype != np.uint8:
            got = None if frames is None else (frames.shape, str(frames.dtype))
            raise InvalidChunk(f"render chunk {key} holds {got}, expected uint8 frames of shape {want}")
        yield from frames


def _stage_timings(storage: Storage, job: JobKeys) -> dict[str, Any]:
    """Seconds per stage from the handlers' timing records (render chunks summed)."""
    out: dict[str, Any] = {}
    render_s, render_frames, n = 0.0, 0, 0
    for key in storage.list(job.timings):
        try:
            rec = json.loads(storage.get(key))
        except (KeyError, ValueError):
            continue
        stage = str(rec.get("stage", ""))
        if stage.startswith("render_chunk"):
            render_s += float(rec.get("seconds", 0.0))
            render_frames += int(rec.get("frames", 0))
            n += 1
        elif stage:
            out[stage] = float(rec.get("seconds", 0.0))
    if n:
        out["render_chunks"] = round(render_s, 3)
        out["render_seconds_per_frame"] = round(render_s / max(1, render_frames), 4)
        out["render_chunk_count"] = n
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _versions() -> dict[str, str]:
    import sys

    v = {"sadtalker": __version__, "python": platform.python_version(), "numpy": np.__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        v["torch"] = torch.__version__
    return v


def _preview_jpeg(frames: list[np.ndarray]) -> bytes:
    from .. import video

    return video.contact_sheet(frames, count=len(frames))


def enhance_workers(num_frames: int) -> int:
    """Processes for GFPGAN: the cores (at most 4, ~1 GB each), one for short clips. $SADTALKER_ENHANCE_WORKERS wins."""
    env = os.environ.get("SADTALKER_ENHANCE_WORKERS")
    if env:
        return max(1, int(env))
    return 1 if num_frames < 50 else max(1, min(4, available_cores()))


def finalize(storage: Storage, job: JobKeys, models: ModelStore) -> dict:
    from .. import video
    from ..paste_back import PasteBack

    t0 = time.perf_counter()
    params = JobRecord.read(storage, job).params
    audio = storage.require_npz(job.audio, "audio features")
    face = storage.require_npz(job.face, "face data")
    num_frames = int(audio["num_frames"])
    plan = ChunkPlan.read(storage, job)
    if plan.num_frames != num_frames:
        raise InvalidChunk(f"the chunk plan covers {plan.num_frames} frames but the speech has {num_frames}")
    chunks = plan.chunks
    original = _decode_png(storage.require(job.original_image, "original photo"))
    compose = PasteBack(face, original, params)
    wav = np.asarray(audio["wav"], np.float32)

    picks = set(np.linspace(0, num_frames - 1, min(PREVIEW_FRAMES, num_frames)).round().astype(int).tolist())
    preview: list[np.ndarray] = []
    counted = {"n": 0}

    def composed() -> Iterator[np.ndarray]:
        for frame in _chunk_frames(storage, job, chunks, params.size):
            yield compose(frame)

    def observed(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            if counted["n"] in picks:
                preview.append(np.array(frame, copy=True))
            counted["n"] += 1
            yield frame

    frames: Iterator[np.ndarray] = composed()
    enhanced = None
    if params.enhancer:
        from ..enhance import EnhanceStats, enhance_frames
        from ..enhance.hint import face_hint_for_frames

        enhanced = EnhanceStats()

        # The pipeline knows where the face is (the photo's landmarks, mapped into composed frames): the
        # enhancer only refines them per frame instead of searching every frame.
        hint = face_hint_for_frames(face, params.full_mode, params.ext_mode, compose.output_shape[:2])
        frames = enhance_frames(frames, params=params, models=models, seed=params.effective_seed(job.job_id),
                                workers=enhance_workers(num_frames), face_hint=hint, stats=enhanced)
    t_setup = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sadtalker-finalize-") as tmp:
        out_path = Path(tmp) / "video.mp4"
        info = video.encode_video(observed(frames), wav, out_path, fps=FPS)
        video_bytes = out_path.read_bytes()
    t_encode = time.perf_counter()
    if counted["n"] != num_frames:
        raise FinalizeFailed(f"the video got {counted['n']} frames but the clip has {num_frames}")
    preview_bytes = _preview_jpeg(preview)
    try:
        timings = _publish(storage, job, params, models, plan, info, video_bytes, preview_bytes,
                           t0, t_setup, t_encode, enhanced)
    except BaseException:
        remove_results(storage, job)  # a reader never finds a video.mp4 without its result.json
        raise
    finally:
        _delete_quietly(storage, job.partial_video)
    return {"video_key": job.video, "result_key": job.result, "frames": num_frames,
            "timings": timings}


def _delete_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # cleanup is best effort: the lifecycle rule expires work/ anyway
        pass


def remove_results(storage: Storage, job: JobKeys) -> None:
    """Remove a (partial) result: result.json first, so no reader takes what remains for a success."""
    for key in job.results:
        _delete_quietly(storage, key)


def _weight_files(models: ModelStore, params: JobParams) -> dict[str, dict]:
    from ..weights import requirements

    return models.fingerprints(requirements(params.size, params.preprocess, params.enhancer, params.background_enhancer))


def _publish(storage: Storage, job: JobKeys, params: JobParams, models: ModelStore, plan: ChunkPlan, info,
             video_bytes: bytes, preview_bytes: bytes, t0: float, t_setup: float, t_encode: float,
             enhanced=None) -> dict:
    """Outputs in reader-safe order: the video under a temporary work/ key, the preview, the video copied
    to outputs/ (appears complete, in one step), result.json LAST (its presence means success)."""
    storage.put(job.partial_video, video_bytes)
    storage.put(job.preview, preview_bytes)
    storage.copy(job.partial_video, job.video)
    t_write = time.perf_counter()

    timings = _stage_timings(storage, job)
    timings["finalize"] = {
        "setup_s": round(t_setup - t0, 3),
        "compose_enhance_encode_s": round(t_encode - t_setup, 3),
        "write_s": round(t_write - t_encode, 3),
        "total_s": round(t_write - t0, 3),
    }
    synthetic = models.synthetic
    num_frames = plan.num_frames
    info_dict = info.__dict__ if hasattr(info, "__dict__") else dict(info or {})
    result = {
        "job_id": job.job_id,
        "status": "SUCCEEDED",
        "video": job.video,
        "preview": job.preview,
        "frames": num_frames,
        "fps": FPS,
        "duration_s": round(num_frames / FPS, 3),
        "video_info": {k: v for k, v in info_dict.items() if isinstance(v, (int, float, str, bool)) and k != "path"},
        "params": json.loads(params.to_json()),
        "seed": params.effective_seed(job.job_id),
        "plan": {"chunks": len(plan.chunks), "chunk_frames": plan.chunk_frames,
                 "map_concurrency": plan.max_concurrency},
        # what the enhancer networks ran in (bf16 falls back to fp32 on a CPU without it)
        "enhancer": None if enhanced is None else {"precision": enhanced.precision, "frames": enhanced.frames,
                                                   "no_face_frames": enhanced.no_face},
        "timings": timings,
        "weights": {
            "source": str(models.root),
            "profile": models.profile,
            "synthetic": synthetic,
            "files": _weight_files(models, params),
        },
        "SYNTHETIC": synthetic,
        "note": "made with SYNTHETIC weights: a pipeline check, not an animation" if synthetic else "",
        "hashes": {"video_sha256": _sha256(video_bytes), "preview_sha256": _sha256(preview_bytes)},
        "versions": _versions(),
    }
    storage.put(job.result, json.dumps(result, indent=2).encode())  # LAST: its presence means success
    return timings["finalize"]

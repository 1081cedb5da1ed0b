"""Finalize: the job's video segments -> outputs/<job>/video.mp4, preview.jpg and result.json.

Inputs: the job record (validated params), the chunk plan and the waveform, never recomputed here. The
plan's segments (``ChunkPlan.segments``: one per render chunk, or one per enhancement range) were encoded
by RenderChunk / the EnhanceRanges tasks; first any error an enhancement task recorded
(``JobKeys.range_error``) is raised by name, then the segments are concatenated without re-encoding the
video and one AAC track of exactly num_frames / fps is muxed (``video.concat_segments``). The preview is
made of frames decoded from that result. Cost: a copy of the video plus the audio encode, so Finalize
runs on Lambda for every job.

Atomic outputs: the video is written under ``JobKeys.partial_video`` first and then stored at
``outputs/<job>/video.mp4``; ``result.json`` is written LAST, so its presence means the job succeeded
(the CheckResult state relies on that). Weights made by ``sadtalker weights synthetic`` are flagged in
result.json (``weights.synthetic``) - such videos are pipeline checks, not animations.
"""

from __future__ import annotations

import hashlib
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..audio.features import FPS
from ..errors import FinalizeFailed, InvalidChunk, error_from_record
from ..hls import close_stream
from ..jobs import ENHANCE_RANGE, RENDER_CHUNK, JobKeys, JobRecord
from ..params import JobParams
from ..pricing import Stack, cost_record
from ..storage import Storage
from ..weights import ModelStore
from .plan_chunks import ChunkPlan

PREVIEW_FRAMES = 8


def raise_range_errors(storage: Storage, job: JobKeys, plan: ChunkPlan) -> None:
    """The first error an enhancement task recorded, raised by its name (the task itself exited 0)."""
    for r in plan.ranges:
        try:
            record = json.loads(storage.get(job.range_error(r["start"], r["end"])))
        except KeyError:
            continue
        except ValueError:
            record = {"error": "FinalizeFailed", "message": f"enhancement range {r['start']}-{r['end']} failed"}
        raise error_from_record(record)


def _fetch_segments(storage: Storage, job: JobKeys, plan: ChunkPlan, into: Path) -> list[Path]:
    paths = []
    for seg in plan.segments:
        key = job.segment(seg["start"], seg["end"])
        try:
            data = storage.get(key)
        except KeyError:
            raise FinalizeFailed(f"video segment {seg['start']}-{seg['end']} is missing ({key})") from None
        paths.append(into / f"{seg['start']:06d}-{seg['end']:06d}.ts")
        paths[-1].write_bytes(data)
    return paths


def _stage_timings(storage: Storage, job: JobKeys) -> dict[str, Any]:
    """Seconds per stage from the handlers' timing records (render chunks summed)."""
    out: dict[str, Any] = {}
    sums = {RENDER_CHUNK: [0.0, 0, 0], ENHANCE_RANGE: [0.0, 0, 0]}  # seconds, frames, records
    for key in storage.list(job.timings):
        try:
            rec = json.loads(storage.get(key))
        except (KeyError, ValueError):
            continue
        stage = str(rec.get("stage", ""))
        kind = next((k for k in sums if stage.startswith(k + "-")), None)
        if kind:
            sums[kind][0] += float(rec.get("seconds", 0.0))
            sums[kind][1] += int(rec.get("frames", 0))
            sums[kind][2] += 1
        elif stage:
            out[stage] = float(rec.get("seconds", 0.0))
    for kind, label in ((RENDER_CHUNK, "render"), (ENHANCE_RANGE, "enhance")):
        seconds, frames, n = sums[kind]
        if n:
            out[f"{label}_{'chunks' if kind == RENDER_CHUNK else 'ranges'}"] = round(seconds, 3)
            out[f"{label}_seconds_per_frame"] = round(seconds / max(1, frames), 4)
            out[f"{label}_{'chunk' if kind == RENDER_CHUNK else 'range'}_count"] = n
    return out


def _enhancer_stats(storage: Storage, job: JobKeys, plan: ChunkPlan) -> dict[str, Any] | None:
    """What the enhancement tasks recorded (precision, frames, frames without a face), summed over ranges."""
    if not plan.ranges:
        return None
    out: dict[str, Any] = {"precision": "", "frames": 0, "no_face_frames": 0}
    for r in plan.ranges:
        try:
            rec = json.loads(storage.get(job.timing(JobKeys.range_name(r["start"], r["end"])))).get("enhancer", {})
        except (KeyError, ValueError):
            continue
        out["precision"] = out["precision"] or rec.get("precision", "")
        out["frames"] += int(rec.get("frames", 0))
        out["no_face_frames"] += int(rec.get("no_face_frames", 0))
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


def finalize(storage: Storage, job: JobKeys, models: ModelStore, stack: Stack | None = None) -> dict:
    """``stack``: the deployed sizes; given, result.json records the job's cost next to its quote."""
    from .. import video

    t0 = time.perf_counter()
    params = JobRecord.read(storage, job).params
    audio = storage.require_npz(job.audio, "audio features")
    num_frames = int(audio["num_frames"])
    plan = ChunkPlan.read(storage, job)
    if plan.num_frames != num_frames:
        raise InvalidChunk(f"the chunk plan covers {plan.num_frames} frames but the speech has {num_frames}")
    raise_range_errors(storage, job, plan)
    wav = np.asarray(audio["wav"], np.float32)
    with tempfile.TemporaryDirectory(prefix="sadtalker-finalize-") as tmp:
        segments = _fetch_segments(storage, job, plan, Path(tmp))
        t_setup = time.perf_counter()
        out_path = Path(tmp) / "video.mp4"
        info = video.concat_segments(segments, wav, num_frames, out_path, fps=FPS)
        counted = video.count_frames(out_path)
        if counted != num_frames:
            raise FinalizeFailed(f"the video got {counted} frames but the clip has {num_frames}")
        picks = np.linspace(0, num_frames - 1, min(PREVIEW_FRAMES, num_frames)).round().astype(int)
        preview_bytes = video.contact_sheet(list(video.decode_frames(out_path, picks)), count=len(picks))
        video_bytes = out_path.read_bytes()
    t_encode = time.perf_counter()
    try:
        timings = _publish(storage, job, params, models, plan, info, video_bytes, preview_bytes,
                           t0, t_setup, t_encode, _enhancer_stats(storage, job, plan), stack)
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
             enhanced: dict[str, Any] | None, stack: Stack | None) -> dict:
    """Outputs in reader-safe order: the video under a temporary work/ key, the preview, the video copied
    to outputs/ (appears complete, in one step), result.json LAST (its presence means success)."""
    storage.put(job.partial_video, video_bytes)
    storage.put(job.preview, preview_bytes)
    storage.copy(job.partial_video, job.video)
    t_write = time.perf_counter()

    timings = _stage_timings(storage, job)
    timings["finalize"] = {
        "setup_s": round(t_setup - t0, 3),
        "concat_preview_s": round(t_encode - t_setup, 3),
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
                 "map_concurrency": plan.max_concurrency, "ranges": len(plan.ranges)},
        # what the enhancer networks ran in (bf16 falls back to fp32 on a CPU without it), from the ranges
        "enhancer": enhanced,
        "timings": timings,
        "cost": None if stack is None else cost_record(timings, plan, params, stack),
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
    # the HLS stream becomes the complete presentation (#EXT-X-ENDLIST) before the job counts as done
    close_stream(storage, job, plan)
    storage.put(job.result, json.dumps(result, indent=2).encode())  # LAST: its presence means success
    return timings["finalize"]

"""EnhanceRange stage: the lossless render chunks of one enhancement range -> its video segment.

One range of the plan (``ChunkPlan.ranges``: whole render chunks, frames [start, end)) is read chunk by
chunk, pasted back onto the photo (``paste_back.PasteBack``, built once), enhanced (GFPGAN, RealESRGAN:
``enhance.enhance_frames``) and encoded as ``JobKeys.segment(start, end)`` (``video.encode_segment``).
Frames stream through: memory is one chunk plus the enhancer's frames in flight.

A range's frames equal the same frames of an unsplit run, bit for bit: paste-back is per frame, GFPGAN's
noise is seeded by (job seed, clip frame index) (``first_index=start``), and RealESRGAN's tile reuse starts
empty in every range (each ``enhance_frames`` call builds its own enhancers) and is exact anyway - a
reused tile is one whose input is bit-identical to the previous frame's (enhance/upsampler.py).

Inputs come from the job record (validated params) and the plan, never recomputed; a range that is not
one of the plan's is refused before anything is read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from ..errors import InvalidChunk, InvalidParams, RenderFailed
from ..jobs import JobKeys, JobRecord
from ..machine import available_cores
from ..storage import Storage
from ..weights import ModelStore
from .plan_chunks import ChunkPlan
from .render_chunk import read_png, store_segment

ENHANCE_WORKERS_ENV = "SADTALKER_ENHANCE_WORKERS"


def chunk_frames(storage: Storage, job: JobKeys, chunks: list[dict[str, int]], size: int) -> Iterator[np.ndarray]:
    """The rendered frames of ``chunks`` in order, each chunk checked against its plan entry."""
    for c in chunks:
        key = job.chunk(c["start"], c["end"])
        try:
            data = storage.get_npz(key)
        except KeyError:
            raise RenderFailed(f"render chunk {c['start']}-{c['end']} is missing ({key})") from None
        frames = data.get("frames")
        want = (c["end"] - c["start"], size, size, 3)
        if frames is None or frames.shape != want or frames.dtype != np.uint8:
            got = None if frames is None else (frames.shape, str(frames.dtype))
            raise InvalidChunk(f"render chunk {key} holds {got}, expected uint8 frames of shape {want}")
        yield from frames


def enhance_workers(num_frames: int) -> int:
    """Processes for GFPGAN: the cores (at most 4, ~1 GB each), one for short ranges. $SADTALKER_ENHANCE_WORKERS wins."""
    env = os.environ.get(ENHANCE_WORKERS_ENV)
    if env:
        return max(1, int(env))
    return 1 if num_frames < 50 else max(1, min(4, available_cores()))


def range_chunks(plan: ChunkPlan, start: int, end: int) -> list[dict[str, int]]:
    """The render chunks of the plan's range [start, end); InvalidChunk when it is not one of its ranges."""
    if {"start": start, "end": end} not in plan.ranges:
        raise InvalidChunk(f"enhancement range {start}-{end} is not a range of the job's plan")
    return [c for c in plan.chunks if start <= c["start"] and c["end"] <= end]


def enhanced_frames(storage: Storage, job: JobKeys, start: int, end: int, models: ModelStore,
                    stats=None) -> Iterator[np.ndarray]:
    """Frames [start, end) pasted back and enhanced, in order (``stats``: an ``enhance.EnhanceStats`` to fill).

    Everything is checked before the first frame is yielded (a generator would defer it to the encoder)."""
    from ..enhance import enhance_frames
    from ..enhance.hint import face_hint_for_frames
    from ..paste_back import PasteBack

    params = JobRecord.read(storage, job).params
    if not params.enhancer:
        raise InvalidParams(f"enhancement range {start}-{end}: the job has no enhancer")
    chunks = range_chunks(ChunkPlan.read(storage, job), start, end)
    face = storage.require_npz(job.face, "face data")
    compose = PasteBack(face, read_png(storage.require(job.original_image, "original photo"), "original photo"), params)
    # the pipeline knows where the face is (the photo's landmarks, mapped into composed frames)
    hint = face_hint_for_frames(face, params.full_mode, params.ext_mode, compose.output_shape[:2])
    composed = (compose(f) for f in chunk_frames(storage, job, chunks, params.size))
    return enhance_frames(composed, params=params, models=models, seed=params.effective_seed(job.job_id),
                          workers=enhance_workers(end - start), face_hint=hint, first_index=start, stats=stats)


def enhance_range(storage: Storage, job: JobKeys, start: int, end: int, models: ModelStore) -> dict:
    """Enhance the range and write its segment (one put; a retried range rewrites the same key)."""
    from ..enhance import EnhanceStats

    t0 = time.perf_counter()
    stats = EnhanceStats()
    frames = enhanced_frames(storage, job, start, end, models, stats)
    t1 = time.perf_counter()
    key = job.segment(start, end)
    count = store_segment(storage, key, frames, start)
    if count != end - start:
        raise RenderFailed(f"enhancement range {start}-{end} produced {count} frames, expected {end - start}")
    return {
        "key": key, "start": start, "end": end, "frames": count,
        "enhancer": {"precision": stats.precision, "frames": stats.frames, "no_face_frames": stats.no_face},
        "timings": {"setup_s": round(t1 - t0, 3), "enhance_encode_s": round(time.perf_counter() - t1, 3),
                    "face_s": round(stats.seconds_face, 3), "background_s": round(stats.seconds_background, 3)},
    }

"""Enhance stage: rendered chunks -> composed frames -> GFPGAN + 2x background -> enhanced chunk objects.

Reads job.chunk(start, end) (``frames`` (N, S, S, 3) uint8 RGB), passes every frame through
``compose`` (the pipeline gives the paste-back composer; default: identity) and then through
``enhance_frames``; writes job.enhanced_chunk(start, end) with ``frames`` (N, 2H, 2W, 3) uint8 RGB,
``start`` and ``end``. Frames stream through one worker pool for the whole clip; only one chunk's
output is held at a time. Keys are deterministic and writes atomic, so a retry is harmless; GFPGAN's
noise is seeded by (job seed, frame index), so a retry also writes the same frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from ..enhance.stream import EnhanceStats, available_cores, enhance_frames
from ..errors import InvalidChunk
from ..jobs import JobKeys
from ..params import JobParams
from ..storage import Storage
from ..weights import ModelStore


def default_workers() -> int:
    # Convolutions scale well to 2 threads; more processes than that per core pair only add memory
    # (a full-size GFPGAN + RRDBNet worker peaks around 1.5-2 GB).
    return max(1, available_cores() // 2)


def _bounds(chunks: list[dict]) -> list[tuple[int, int]]:
    out = []
    for c in chunks:
        try:
            start, end = int(c["start"]), int(c["end"])
        except (KeyError, TypeError, ValueError):
            raise InvalidChunk(f"chunk descriptor {c!r} needs integer 'start' and 'end'") from None
        if start >= end or start < 0:
            raise InvalidChunk(f"chunk [{start}, {end}) is empty or negative")
        out.append((start, end))
    return out


def enhance(
    storage: Storage,
    job: JobKeys,
    params: JobParams,
    models: ModelStore,
    chunks: list[dict],
    *,
    compose: Callable[[np.ndarray], np.ndarray] | None = None,
    workers: int | None = None,
    face_hint: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Enhance every chunk's frames; returns ``{"keys", "frames", "no_face", ...}`` (no arrays)."""
    t0 = time.monotonic()
    if not params.enhancer:
        return {"enhanced": False, "keys": [], "frames": 0}
    bounds = _bounds(chunks)
    for start, end in bounds:
        if not storage.exists(job.chunk(start, end)):
            raise InvalidChunk(f"rendered chunk {job.chunk(start, end)} does not exist")
    compose = compose or (lambda frame: frame)

    def frames() -> Iterator[np.ndarray]:
        for start, end in bounds:
            data = storage.get_npz(job.chunk(start, end))
            rendered = data.get("frames")
            if rendered is None or rendered.ndim != 4 or rendered.shape[0] != end - start or rendered.dtype != np.uint8:
                got = None if rendered is None else (rendered.shape, str(rendered.dtype))
                raise InvalidChunk(f"{job.chunk(start, end)} should hold {end - start} uint8 RGB frames, got {got}")
            for frame in rendered:
                yield compose(frame)

    stats = EnhanceStats()
    first = bounds[0][0] if bounds else 0
    # One stream over all chunks so the worker pool (and its loaded networks) lives for the whole clip.
    # Frame indices must be contiguous for the noise seeds: chunks are consecutive by contract.
    for (_, end), (start2, _) in zip(bounds, bounds[1:], strict=False):
        if start2 != end:
            raise InvalidChunk(f"chunks must be consecutive: one ends at {end}, the next starts at {start2}")
    stream = enhance_frames(
        frames(),
        params=params,
        models=models,
        seed=params.effective_seed(job.job_id),
        workers=default_workers() if workers is None else workers,
        face_hint=face_hint,
        first_index=first,
        progress=progress,
        stats=stats,
    )
    keys = []
    try:
        for start, end in bounds:
            out = np.stack([next(stream) for _ in range(end - start)])
            key = job.enhanced_chunk(start, end)
            storage.put_npz(key, {"frames": out, "start": np.int64(start), "end": np.int64(end)})
            keys.append(key)
    finally:
        stream.close()  # shuts the worker pool down, also after an error
    return {
        "enhanced": True,
        "keys": keys,
        "frames": stats.frames,
        "no_face": stats.no_face,
        "stats": stats.to_dict(),
        "seconds": round(time.monotonic() - t0, 3),
    }

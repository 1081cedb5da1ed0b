"""RenderChunk: frames [start, end) of the clip, written losslessly to a deterministic key.

``run`` takes the storage explicitly so the local runtime's worker processes can call it with an
in-memory storage (moto's S3 lives in the parent process).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from sadtalker.errors import RenderFailed, SadTalkerError
from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for, write_timing
from .events import RenderChunkEvent


@contextlib.contextmanager
def naming_the_chunk(start: int, end: int) -> Iterator[None]:
    """Every failure says which chunk failed; named errors keep their class (Retry/Catch match on it),
    anything unexpected becomes RenderFailed."""
    where = f"render chunk {start}-{end}"
    try:
        yield
    except SadTalkerError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from exc
    except Exception as exc:
        raise RenderFailed(f"{where} failed: {type(exc).__name__}: {exc}") from exc


def run(ev: RenderChunkEvent, storage) -> dict:
    from sadtalker.stages import render_chunk as stage

    job = JobKeys(ev.job_id)
    t0 = time.perf_counter()
    out = dict(stage.render_chunk(storage, job, ev.start, ev.end, ev.job_params(), model_store()))
    seconds = time.perf_counter() - t0
    write_timing(storage, job, f"render_chunk-{ev.start:06d}-{ev.end:06d}", seconds, out)
    out.setdefault("frames", ev.end - ev.start)
    return out


@stage_handler("render_chunk")
def handler(event: dict) -> dict:
    ev = RenderChunkEvent.parse(event)
    with naming_the_chunk(ev.start, ev.end):
        return run(ev, storage_for(ev.bucket))

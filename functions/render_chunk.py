"""RenderChunk: frames [start, end) of the clip -> its video segment (no enhancer) or its lossless frames
(for the enhancement range holding it), at a deterministic key.

``run`` takes the storage explicitly so the local runtime's worker processes can call it with an
in-memory storage (moto's S3 lives in the parent process); ``publish`` (the HLS stream) then runs where
the bucket is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from sadtalker.errors import RenderFailed, SadTalkerError
from sadtalker.jobs import JobKeys

from .common import deadline, model_store, stage_handler, storage_for
from .events import RenderChunkEvent


@contextlib.contextmanager
def naming_the_chunk(start: int, end: int) -> Iterator[None]:
    """Every failure says which chunk failed; named errors keep their class (Retry/Catch match on it),
    anything unexpected becomes RenderFailed."""
    where = f"render chunk {start}-{end}"  # RecordFailure and the README name chunks this way
    try:
        yield
    except SadTalkerError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from exc
    except Exception as exc:
        raise RenderFailed(f"{where} failed: {type(exc).__name__}: {exc}") from exc


def run(ev: RenderChunkEvent, storage, until: float | None = None) -> dict:
    """``until``: when the function is killed (``time.monotonic()``); the stage stops in time before it."""
    from sadtalker.stages import render_chunk as stage

    time_left = None if until is None else (lambda: until - time.monotonic())
    return stage.render_chunk(storage, JobKeys(ev.job_id), ev.start, ev.end, ev.job_params(), model_store(),
                              time_left=time_left)


def publish(ev: RenderChunkEvent, storage, out: dict) -> None:
    """After the chunk's video segment is stored: the job's HLS stream lists the finished prefix. Not
    part of ``run``: a local render worker's storage holds only its own chunk's objects."""
    job = JobKeys(ev.job_id)
    if out["key"].startswith(job.segments):  # with an enhancer the segments come from the range tasks
        from sadtalker.hls import publish_stream

        publish_stream(storage, job)


@stage_handler("render_chunk")
def handler(ev: RenderChunkEvent) -> dict:
    with naming_the_chunk(ev.start, ev.end):
        storage = storage_for(ev.bucket)
        out = run(ev, storage, deadline())
        publish(ev, storage, out)
        return out

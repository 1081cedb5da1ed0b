"""Render chunks in worker processes so the RenderChunks Map uses the machine's cores.

The lambda:invoke route of RenderChunk runs the RenderChunk stage handler in the parent (event and
result models, timing record, metrics) and hands the render itself to a process pool (spawned, so no
moto/thread state is forked). Each worker runs ``functions.render_chunk.run`` against a MemoryStorage
holding the job's work objects, under the same function context (environment, S3 policy) as the
parent's call, and returns what it wrote. torch threads per worker = cores // workers, so workers
x threads never oversubscribes the CPU. Models stay loaded in each worker (the loaders' lru_cache),
like a warm Lambda container.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import TransientError
from ..jobs import JobKeys
from ..machine import available_cores
from .memstore import MemoryStorage


def plan_workers(requested: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker). ``requested`` 0 means render in-process."""
    cores = available_cores()
    workers = cores if requested is None else max(0, requested)
    workers = min(workers, cores)
    threads = max(1, cores // max(1, workers))
    return workers, threads


def _worker_init(threads: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _render_in_worker(event: dict, objects: dict[str, bytes], ctx) -> tuple[dict, dict[str, bytes]]:
    from functions.common import running_as, storage_for
    from functions.events import RenderChunkEvent
    from functions.render_chunk import run

    storage = MemoryStorage(objects)
    with running_as(ctx):
        from functions import common

        common.set_storage_factory(lambda bucket: storage)
        out = run(RenderChunkEvent.parse(event), storage_for(event["bucket"]))
    return out, {k: storage.objects[k] for k in dict.fromkeys(storage.written)}


def job_objects(storage, job: JobKeys) -> dict[str, bytes]:
    """What a chunk reads, copied for the worker: the coefficients, the face data, the source crop and the
    original photo for paste-back (the role may read nothing else of the job, so nothing else is shipped)."""
    out = {}
    for key in (job.coeffs, job.face, job.source_image, job.original_image):  # the last: paste-back
        try:
            out[key] = storage.get(key)
        except KeyError:  # the stage names what is missing
            pass
    return out


class RenderPool:
    def __init__(self, workers: int, threads: int, env: dict[str, str]):
        import multiprocessing

        self.workers, self.threads, self.env = workers, threads, dict(env)
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=self._ctx,
                    initializer=_worker_init, initargs=(self.threads, self.env),
                )
            return self._pool

    def render(self, event: dict, objects: dict[str, bytes], ctx) -> tuple[dict, dict[str, bytes]]:
        try:
            return self._executor().submit(_render_in_worker, event, objects, ctx).result()
        except BrokenProcessPool:
            with self._lock:
                self._pool = None  # a fresh pool for the retry
            raise TransientError("a render worker process died (out of memory?); the chunk will be retried") from None

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def pooled_render_handler(pool: RenderPool) -> Any:
    """The RenderChunk handler with the render in a worker: reads and writes go through the parent's
    (policy-checked) storage, the worker checks its own reads against the same policy."""
    from functions.common import current_context, stage_handler, storage_for
    from functions.render_chunk import naming_the_chunk, publish

    @stage_handler("render_chunk")
    def handler(ev) -> dict:
        storage = storage_for(ev.bucket)
        with naming_the_chunk(ev.start, ev.end):
            out, written = pool.render(ev.model_dump(), job_objects(storage, JobKeys(ev.job_id)), current_context())
            for key, data in written.items():
                storage.put(key, data)
            publish(ev, storage, out)
        return out

    return handler

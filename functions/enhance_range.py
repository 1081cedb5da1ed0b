"""EnhanceRange: the Fargate task of one EnhanceRanges Map iteration (ecs:runTask.sync), ``main(env)``.

The task is told the job and its range in container overrides (``JOB_ID``, ``RANGE_START``, ``RANGE_END``);
the bucket is in its task definition's environment, the validated params and the plan are read from the
job's record and plan objects.

A named failure is recorded in ``JobKeys.range_error(start, end)`` (name + sentence) and the task exits 0:
Finalize raises the recorded error, so its name reaches error.json. (A non-zero exit makes
ecs:runTask.sync fail the state with States.TaskFailed and the name would be lost.) Non-zero exits are
left to what retrying can fix: a crash, a killed container (137), a task that could not start - the
state retries those, and the range is idempotent (one deterministic key, written in one put).
"""

from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace

from sadtalker.errors import FinalizeFailed, SadTalkerError, TransientError
from sadtalker.jobs import JobKeys

from .common import model_store, storage_for, timing_record
from .contract import BUCKET_ENV
from .observability import logger

JOB_ID_ENV, RANGE_START_ENV, RANGE_END_ENV = "JOB_ID", "RANGE_START", "RANGE_END"  # the container overrides


def _frame(env: dict[str, str], name: str) -> int:
    try:
        return int(env.get(name, ""))
    except ValueError:
        raise FinalizeFailed(f"the enhancement task started without a frame index in {name}") from None


def main(env: dict[str, str] | None = None) -> int:
    """Fargate entrypoint. Returns the process exit code."""
    from sadtalker.hls import publish_stream
    from sadtalker.stages.enhance_range import enhance_range

    env = dict(os.environ if env is None else env)
    job_id, bucket = env.get(JOB_ID_ENV, ""), env.get(BUCKET_ENV, "")
    logger.set_correlation_id(job_id or None)
    storage = key = None
    try:
        if not job_id or not bucket:
            raise FinalizeFailed(f"the enhancement task started without {JOB_ID_ENV} or {BUCKET_ENV} in its environment")
        job = JobKeys(job_id)
        start, end = _frame(env, RANGE_START_ENV), _frame(env, RANGE_END_ENV)
        storage, key = storage_for(bucket), job.range_error(start, end)
        t0 = time.perf_counter()
        try:
            out = enhance_range(storage, job, start, end, model_store())
            publish_stream(storage, job)  # the range's segment is stored: the stream lists the finished prefix
        except SadTalkerError as exc:
            where = f"enhancement range {start}-{end}"
            raise exc if str(exc).startswith(where) else type(exc)(f"{where}: {exc}") from exc
        seconds = time.perf_counter() - t0
        name = JobKeys.range_name(start, end)
        record = timing_record(name, seconds, SimpleNamespace(frames=out["frames"], timings=out["timings"]))
        storage.put(job.timing(name), json.dumps({**record, "enhancer": out["enhancer"]}).encode())
        logger.info("enhancement range done", extra={"start": start, "end": end, "seconds": round(seconds, 3)})
        return 0
    except TransientError:
        logger.exception("enhancement range failed; the state retries it")
        return 1  # e.g. a worker process killed for memory: worth another task
    except Exception as exc:
        name = exc.name if isinstance(exc, SadTalkerError) else "FinalizeFailed"
        message = str(exc) if isinstance(exc, SadTalkerError) else f"enhancement crashed: {type(exc).__name__}: {exc}"
        logger.exception("enhancement range failed")
        if storage is None or key is None:
            return 1  # nowhere to record it: the state fails (and retries) on the exit code
        try:
            storage.put(key, json.dumps({"error": name, "message": message}).encode())
        except Exception:  # unrecorded: a non-zero exit fails the state (and is retried)
            logger.exception("could not record the enhancement error")
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())

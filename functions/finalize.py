"""Finalize: paste-back, optional enhancement, H.264/AAC mux, preview, result.json.

Two entrypoints run the same code:
* ``handler(event, context)`` - the FinalizeLambda state (short clips without an enhancer);
* ``main(env)`` - the Fargate task of the Finalize state (ecs:runTask.sync). Its inputs come from the
  container environment: SADTALKER_BUCKET, JOB_ID, PARAMS (JSON), NUM_FRAMES. A failure writes
  ``work/<job>/finalize-error.json`` (name + sentence) and exits 1; the CheckResult state turns that
  (or a missing result.json) into the job's named error.
"""

from __future__ import annotations

import json
import os
import sys
import time

from sadtalker.errors import FinalizeFailed, SadTalkerError
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.plan_chunks import plan_chunks

from .common import model_store, stage_handler, storage_for, write_timing
from .events import FinalizeEvent
from .observability import logger


def finalize_error_key(job: JobKeys) -> str:
    return f"{job.work}finalize-error.json"


def run(job_id: str, bucket: str, params: JobParams, num_frames: int, storage=None) -> dict:
    from sadtalker.stages import finalize as stage

    storage = storage or storage_for(bucket)
    job = JobKeys(job_id)
    chunks = plan_chunks(num_frames, params)
    t0 = time.perf_counter()
    out = dict(stage.finalize(storage, job, params, model_store(), chunks))
    write_timing(storage, job, "finalize", time.perf_counter() - t0, out)
    return out


@stage_handler("finalize")
def handler(event: dict) -> dict:
    ev = FinalizeEvent.parse(event)
    return run(ev.job_id, ev.bucket, ev.job_params(), ev.num_frames)


def main(env: dict[str, str] | None = None) -> int:
    """Fargate entrypoint. Returns the process exit code."""
    env = dict(os.environ if env is None else env)
    job_id = env.get("JOB_ID", "")
    bucket = env.get("SADTALKER_BUCKET", "")
    logger.set_correlation_id(job_id or None)
    storage = None
    try:
        if not job_id or not bucket:
            raise FinalizeFailed("the finalize task started without JOB_ID or SADTALKER_BUCKET in its environment")
        storage = storage_for(bucket)
        params = JobParams.load(env.get("PARAMS") or "{}")
        num_frames = int(env.get("NUM_FRAMES") or 0)
        out = run(job_id, bucket, params, num_frames, storage)
        logger.info("finalize done", extra={"frames": out.get("frames")})
        return 0
    except Exception as exc:
        name = exc.name if isinstance(exc, SadTalkerError) else "FinalizeFailed"
        message = str(exc) if isinstance(exc, SadTalkerError) else f"finalize crashed: {type(exc).__name__}: {exc}"
        logger.exception("finalize failed")
        if storage is not None:
            try:
                storage.put(finalize_error_key(JobKeys(job_id)), json.dumps({"error": name, "message": message}).encode())
            except Exception:  # the check state still fails the job on the missing result
                logger.exception("could not record the finalize error")
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Finalize: the plan's video segments concatenated (no video re-encode) + AAC, preview, result.json.

Two entrypoints run the same handler:

* ``handler(event, context)`` - the Finalize Lambda (every job: the concat costs a copy and the audio);
* ``main(env)`` - the former Fargate Finalize task, kept only while the state machine still has that
  state (it goes with it). The task is told only the job id (``JOB_ID``); a failure is recorded in
  ``JobKeys.finalize_error`` and the task exits 0 so CheckResult raises it by name.
"""

from __future__ import annotations

import json
import os
import sys

from sadtalker.errors import FinalizeFailed, SadTalkerError
from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for
from .contract import BUCKET_ENV
from .events import FinalizeEvent
from .observability import logger
from .quote import deployed_stack

JOB_ID_ENV = "JOB_ID"  # the one container override the state machine sets


@stage_handler("finalize_lambda")
def handler(ev: FinalizeEvent) -> dict:
    from sadtalker.stages import finalize as stage

    # the bill does not depend on the concurrency: the plan's own is used
    return stage.finalize(storage_for(ev.bucket), JobKeys(ev.job_id), model_store(), deployed_stack(0))


def main(env: dict[str, str] | None = None) -> int:
    """Fargate entrypoint. Returns the process exit code."""
    env = dict(os.environ if env is None else env)
    job_id = env.get(JOB_ID_ENV, "")
    bucket = env.get(BUCKET_ENV, "")
    logger.set_correlation_id(job_id or None)
    storage = None
    try:
        if not job_id or not bucket:
            raise FinalizeFailed(f"the finalize task started without {JOB_ID_ENV} or {BUCKET_ENV} in its environment")
        storage = storage_for(bucket)
        out = handler({"job_id": job_id, "bucket": bucket})
        logger.info("finalize done", extra={"frames": out.get("frames")})
        return 0
    except Exception as exc:
        name = exc.name if isinstance(exc, SadTalkerError) else "FinalizeFailed"
        message = str(exc) if isinstance(exc, SadTalkerError) else f"finalize crashed: {type(exc).__name__}: {exc}"
        logger.exception("finalize failed")
        if storage is None:
            return 1
        try:
            storage.put(JobKeys(job_id).finalize_error, json.dumps({"error": name, "message": message}).encode())
        except Exception:  # unrecorded: a non-zero exit fails the state (and is retried)
            logger.exception("could not record the finalize error")
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""CheckResult (light): a finalize that exits 0 without writing result.json must still fail the job.

Reads ``outputs/<job>/result.json`` (written last by Finalize) and checks that the video it names
exists. A finalize-error.json left by the Fargate task is re-raised under its own error name.
"""

from __future__ import annotations

import json

from sadtalker import errors
from sadtalker.errors import FinalizeFailed
from sadtalker.jobs import JobKeys

from .common import stage_handler, storage_for
from .events import CheckResultEvent, CheckResultOutput


def _raise_recorded(storage, job: JobKeys) -> None:
    try:
        rec = json.loads(storage.get(job.finalize_error))
    except KeyError:
        return
    raise errors.error_from_record(rec, default=FinalizeFailed)


@stage_handler("check_result")
def handler(ev: CheckResultEvent) -> CheckResultOutput:
    job = JobKeys(ev.job_id)
    storage = storage_for(ev.bucket)
    if ev.exit_code != 0:
        _raise_recorded(storage, job)
        code = "without an exit code" if ev.exit_code is None else f"with code {ev.exit_code}"
        raise FinalizeFailed(f"the finalize task exited {code} ({ev.stopped_reason or 'no reason given'})")
    try:
        result = json.loads(storage.get(job.result))
    except KeyError:
        _raise_recorded(storage, job)
        raise FinalizeFailed(f"finalize finished but wrote no {job.result}") from None
    except ValueError:
        raise FinalizeFailed(f"{job.result} is not valid JSON") from None
    if result.get("job_id") != job.job_id or not storage.exists(job.video):
        raise FinalizeFailed(f"{job.result} does not describe a video at {job.video}")
    return CheckResultOutput(
        job_id=job.job_id,
        video=f"s3://{ev.bucket}/{job.video}",
        result=f"s3://{ev.bucket}/{job.result}",
        preview=f"s3://{ev.bucket}/{job.preview}",
        frames=int(result.get("frames", 0)),
        synthetic=bool(result.get("weights", {}).get("synthetic", False)),
    )

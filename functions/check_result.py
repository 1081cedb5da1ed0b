"""CheckResult (light): a Finalize that returns without writing result.json must still fail the job.

Reads ``outputs/<job>/result.json`` (written last by Finalize) and checks that the video it names
exists.
"""

from __future__ import annotations

import json

from sadtalker.errors import FinalizeFailed
from sadtalker.jobs import JobKeys

from .common import stage_handler, storage_for
from .events import CheckResultEvent, CheckResultOutput


@stage_handler("check_result")
def handler(ev: CheckResultEvent) -> CheckResultOutput:
    job = JobKeys(ev.job_id)
    storage = storage_for(ev.bucket)
    try:
        result = json.loads(storage.get(job.result))
    except KeyError:
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

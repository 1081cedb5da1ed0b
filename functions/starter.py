"""S3-drop starter (light): an object landed in ``inbox/<job>/``; once the folder holds a portrait and a
speech file, the job is queued for admission.

Triggered by the bucket's EventBridge "Object Created" events for ``inbox/`` (any object, any order).
The job is not started here: a message goes to the admission queue with a settle delay
(``SADTALKER_SETTLE_SECONDS``), and functions/admit_job.py reads the folder only then - so a params.json or
a reference video uploaded in the same batch as the media, in any order, is never missed - and starts the
execution when the stack has capacity. Every event of a complete folder sends a message; the admission
side makes them one execution (Step Functions' execution names are the lock).
"""

from __future__ import annotations

import json
from typing import Any

from sadtalker.drop import read_folder
from sadtalker.jobs import JobKeys

from .common import setting, storage_for
from .contract import ADMISSION_QUEUE_ENV, SETTLE_SECONDS_ENV
from .observability import logger


def _sqs():
    import boto3

    return boto3.client("sqs")


def handler(event: dict, context: Any = None) -> dict:
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key", "")
    job_id = JobKeys.job_of_inbox_key(key)
    if not bucket or job_id is None:
        return {"status": "ignored", "key": key}
    logger.set_correlation_id(job_id)
    job = JobKeys(job_id)
    folder = read_folder(storage_for(bucket).list(job.inbox), job)
    if not folder.complete:
        return {"status": "waiting", "job_id": job_id}
    message = {"job_id": job_id, "bucket": bucket, "event_time": event.get("time")}
    _sqs().send_message(QueueUrl=setting(ADMISSION_QUEUE_ENV), MessageBody=json.dumps(message),
                        DelaySeconds=int(setting(SETTLE_SECONDS_ENV) or 0))
    logger.info("job queued for admission")
    return {"status": "queued", "job_id": job_id}

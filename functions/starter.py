"""S3-drop starter (light): ``inbox/<job>/`` with an image and a speech file starts exactly one job.

Triggered by the bucket's EventBridge "Object Created" events for ``inbox/`` (any object: the image,
the audio or params.json, in any order). When both media objects exist, StartExecution is called with
the execution name = the job id; a second event for the same job (the other file, a re-delivery) gets
ExecutionAlreadyExists and is reported as a duplicate - Step Functions' name uniqueness is the lock.

Decisions: the first image and the first speech file in key order are used; ``params.json`` is read
if present (upload it first); unparseable params are passed on as text so ValidateJob
fails the job with InvalidParams and an error.json instead of the drop silently doing nothing.
"""

from __future__ import annotations

import json
from typing import Any

from sadtalker.jobs import JobKeys
from sadtalker.params import MAX_PARAMS_BYTES
from sadtalker.stages.validate_job import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

from .common import setting, storage_for
from .contract import STATE_MACHINE_ENV
from .observability import logger


def _step_functions():
    import boto3

    return boto3.client("stepfunctions")


def handler(event: dict, context: Any = None) -> dict:
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key", "")
    job_id = JobKeys.job_of_inbox_key(key)
    if not bucket or job_id is None:
        return {"status": "ignored", "key": key}
    logger.set_correlation_id(job_id)
    job = JobKeys(job_id)
    storage = storage_for(bucket)
    keys = storage.list(job.inbox)
    images = [k for k in keys if k.lower().endswith(IMAGE_EXTENSIONS)]
    audios = [k for k in keys if k.lower().endswith(AUDIO_EXTENSIONS)]
    if not images or not audios:
        return {"status": "waiting", "job_id": job_id, "have": [k.rsplit("/", 1)[1] for k in keys]}
    params: Any = {}
    if job.params_file in keys:
        # At most one byte over the limit is read: an oversized file reaches ValidateJob as text that
        # JobParams.load refuses by size (InvalidParams), and never bloats the state data (256 KB limit).
        data = storage.get(job.params_file, limit=MAX_PARAMS_BYTES + 1)
        text = data.decode("utf-8", "replace")
        try:
            params = json.loads(text) if len(data) <= MAX_PARAMS_BYTES else text
        except ValueError:
            params = text
    job_input = {"image": f"s3://{bucket}/{images[0]}", "audio": f"s3://{bucket}/{audios[0]}", "params": params}
    sfn = _step_functions()
    try:
        arn = sfn.start_execution(
            stateMachineArn=setting(STATE_MACHINE_ENV), name=job_id, input=json.dumps(job_input)
        )["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        logger.info("duplicate start ignored")
        return {"status": "duplicate", "job_id": job_id}
    logger.info("job started", extra={"execution_arn": arn})
    return {"status": "started", "job_id": job_id, "execution_arn": arn}

"""ValidateJob (light: never imports torch): parse the StartExecution input and check the inputs."""

from __future__ import annotations

import time

from sadtalker.jobs import JobKeys
from sadtalker.stages.validate_job import parse_job_input, validate_job

from .common import bucket_name, stage_handler, storage_for, write_timing
from .events import ValidateJobEvent, ValidateJobResult


@stage_handler("validate_job")
def handler(event: dict) -> dict:
    t0 = time.perf_counter()
    ev = ValidateJobEvent.parse(event)
    job = JobKeys(ev.job_id)
    bucket = bucket_name()
    image_key, audio_key, params = parse_job_input(ev.input, bucket)
    storage = storage_for(bucket)
    info = validate_job(storage, job, image_key, audio_key, params)
    result = ValidateJobResult(
        job_id=job.job_id, bucket=bucket, image_key=image_key, audio_key=audio_key,
        params=params.model_dump(mode="json"), seed=info["seed"], image=info["image"], audio=info["audio"],
    ).model_dump()
    write_timing(storage, job, "validate_job", time.perf_counter() - t0, {})
    return result

"""ValidateJob (light: never imports torch): parse the StartExecution input, check the inputs, quote the
job (refused over its ``max_cost_usd``), and write the job record (validated params) that later stages read."""

from __future__ import annotations

from sadtalker.jobs import JobKeys, JobRecord
from sadtalker.pricing import quote_before_decoding
from sadtalker.stages.plan_chunks import check_chunk_budget
from sadtalker.stages.validate_job import parse_job_input, validate_job

from .common import bucket_name, stage_handler, storage_for
from .events import ValidateJobEvent, ValidateJobResult
from .quote import deployed_stack


@stage_handler("validate_job")
def handler(ev: ValidateJobEvent) -> ValidateJobResult:
    job = JobKeys(ev.job_id)
    bucket = bucket_name()
    image_key, audio_key, params = parse_job_input(ev.input, bucket)
    check_chunk_budget(params)
    storage = storage_for(bucket)
    info = validate_job(storage, job, image_key, audio_key, params)
    quote = quote_before_decoding(params, info["audio"], deployed_stack(ev.max_concurrency))
    record = JobRecord(job.job_id, bucket, image_key, audio_key, params, info["seed"])
    storage.put(job.record, record.to_json())
    return ValidateJobResult(
        job_id=job.job_id, bucket=bucket, image_key=image_key, audio_key=audio_key,
        params=params.model_dump(mode="json"), seed=info["seed"], image=info["image"], audio=info["audio"],
        record_key=job.record, quote=None if quote is None else quote.to_dict(),
    )

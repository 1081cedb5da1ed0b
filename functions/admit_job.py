"""Admission (light): a queued S3-drop job starts when the stack has room for it.

Consumes the admission queue (an SQS event source, one message at a time). For each job: read its folder
now (after the starter's settle delay: everything uploaded together is there), refuse a reused folder,
and start the execution named after the job - unless ``SADTALKER_MAX_RUNNING_JOBS`` executions are already
running: then the message is reported as failed and SQS offers it again after its visibility timeout, so
drops beyond the capacity wait in the queue instead of failing (after the queue's maxReceiveCount it moves
to the dead-letter queue, which is alarmed).

Duplicates (several events of one folder, re-deliveries) are harmless: a running or finished execution of
the same name that started before the message was sent makes the message a duplicate. A message sent
after that execution ended means the folder was used again: the job id is taken, and the new upload gets
``outputs/<job>/error.json`` (InvalidInput) instead of silence.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sadtalker.drop import job_input, read_folder
from sadtalker.errors import InvalidInput, TransientError
from sadtalker.jobs import JobKeys

from .common import setting, storage_for
from .contract import MAX_RUNNING_JOBS_ENV, STATE_MACHINE_ENV
from .observability import logger


def _step_functions():
    import boto3

    return boto3.client("stepfunctions")


def _running(sfn, state_machine_arn: str, enough: int) -> int:
    count = 0
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn,
                                                             statusFilter="RUNNING"):
        count += len(page["executions"])
        if count >= enough:
            break
    return count


def _event_time(value: Any) -> datetime | None:
    """EventBridge's event time: ISO 8601 on AWS (whole seconds); moto sends epoch seconds."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _execution_arn(state_machine_arn: str, job_id: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"


def admit(message: dict[str, Any]) -> dict[str, Any]:
    job, bucket = JobKeys(message["job_id"]), message["bucket"]
    state_machine = setting(STATE_MACHINE_ENV)
    sfn = _step_functions()
    try:
        existing = sfn.describe_execution(executionArn=_execution_arn(state_machine, job.job_id))
    except sfn.exceptions.ExecutionDoesNotExist:
        existing = None
    if existing is not None:
        sent = _event_time(message.get("event_time"))
        stopped = existing.get("stopDate")
        if stopped is not None and sent is not None and sent > stopped:
            record = {"error": "InvalidInput", "state": "Admission", "job_id": job.job_id, "message": str(InvalidInput(
                f"the job id {job.job_id!r} is taken: inbox/{job.job_id}/ belongs to a job that ended at "
                f"{stopped.isoformat()}; upload the new job into a new folder"))}
            storage_for(bucket).put(job.error, json.dumps(record, indent=2).encode())
            return {"status": "reused", "job_id": job.job_id}
        return {"status": "duplicate", "job_id": job.job_id}
    storage = storage_for(bucket)
    folder = read_folder(storage.list(job.inbox), job)
    if not folder.complete:  # the media were removed meanwhile
        return {"status": "waiting", "job_id": job.job_id}
    most = int(setting(MAX_RUNNING_JOBS_ENV) or 1)
    running = _running(sfn, state_machine, most)
    if running >= most:
        raise TransientError(f"{running} jobs are running, the stack's most; the job waits in the queue")
    try:
        arn = sfn.start_execution(stateMachineArn=state_machine, name=job.job_id,
                                  input=json.dumps(job_input(storage, bucket, job, folder)))["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:  # a concurrent admission of the same job won
        return {"status": "duplicate", "job_id": job.job_id}
    logger.info("job started", extra={"execution_arn": arn})
    return {"status": "started", "job_id": job.job_id, "execution_arn": arn}


def handler(event: dict, context: Any = None) -> dict:
    """SQS batch: a record that cannot be admitted yet is reported back (ReportBatchItemFailures)."""
    failures, admitted = [], []
    for record in event.get("Records", []):
        message = json.loads(record["body"])
        logger.set_correlation_id(message.get("job_id"))
        try:
            admitted.append(admit(message))
            logger.info("admission", extra=admitted[-1])
        except TransientError as exc:
            logger.info("admission deferred", extra={"reason": str(exc)})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures, "admitted": admitted}

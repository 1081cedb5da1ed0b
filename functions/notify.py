"""Notify (light): a job ended - publish its notification to the stack's SNS topic, POST its webhook.

Triggered by the state machine's EventBridge "Step Functions Execution Status Change" events for
SUCCEEDED, FAILED, TIMED_OUT and ABORTED (infra/components/notifications.py), so executions that never
reached RecordFailure (a timeout, a StopExecution) notify too. The body (sadtalker.notification) comes
from the job's outcome: ``outputs/<job>/result.json`` or ``error.json``, with presigned GET links of the
video, the preview and the stream (``SADTALKER_LINK_EXPIRY_S``).

The topic gets every job's end; the webhook only jobs whose validated parameters (the job record
ValidateJob wrote) carry ``notify_url``: a job refused at ValidateJob has no validated URL and gets none.
A webhook that fails (refused address, timeouts, HTTP errors after the retries) is logged and never
raises: the job's outcome is already decided, and an EventBridge retry would publish to the topic again.
A failure to publish does raise, so EventBridge retries the event (then its dead-letter queue).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sadtalker.errors import InvalidInput, InvalidParams
from sadtalker.jobs import JobKeys, JobRecord
from sadtalker.notification import END_STATUSES, encode, message_body, post_webhook
from sadtalker.storage import Storage

from .common import bucket_name, setting, storage_for
from .contract import NOTIFY_TOPIC_ENV, WEBHOOK_SECRET_ENV
from .observability import logger

_secrets: dict[str, bytes] = {}  # per container: the secret is read once per cold start


def _sns():
    import boto3

    return boto3.client("sns")


def _webhook_secret() -> bytes:
    arn = setting(WEBHOOK_SECRET_ENV) or ""
    if arn not in _secrets:
        import boto3

        _secrets[arn] = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"].encode()
    return _secrets[arn]


def _read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(storage.get(key))
    except KeyError:
        return None
    except ValueError:
        logger.warning("outcome record is not JSON", extra={"key": key})
        return None
    return value if isinstance(value, dict) else None


def _links(storage: Storage, job: JobKeys, status: str) -> tuple[dict[str, str | None], str | None]:
    """Presigned GET links (``storage.link``: this function's ``SADTALKER_LINK_EXPIRY_S``): the video and
    preview of a success, the stream whenever it exists."""
    keys = {"stream": job.stream}
    if status == "SUCCEEDED":
        keys = {"video": job.video, "preview": job.preview, **keys}
    links = {name: storage.link(key) if storage.exists(key) else None for name, key in keys.items()}
    expiry = storage.link_expiry_s or 0
    expires = (datetime.now(UTC) + timedelta(seconds=expiry)).isoformat().replace("+00:00", "Z")
    return links, expires


def _notify_url(storage: Storage, job: JobKeys) -> str | None:
    """The webhook of the job's validated parameters (None when ValidateJob did not accept the job)."""
    try:
        return JobRecord.read(storage, job).params.notify_url
    except (InvalidInput, InvalidParams) as exc:
        logger.info("no validated job record: no webhook", extra={"reason": str(exc)})
        return None


def handler(event: dict, context: Any = None) -> dict:
    detail = event.get("detail") or {}
    status, name = detail.get("status"), detail.get("name")
    if status not in END_STATUSES or not name:
        return {"status": "ignored", "job_status": status}
    logger.set_correlation_id(name)
    logger.append_keys(stage="notify")
    try:
        job: JobKeys | None = JobKeys(name)
    except InvalidInput:  # an execution started by hand under a name no job key can have
        job = None
    storage = storage_for(bucket_name())
    outcome, links, expires = None, {}, None
    if job is not None:
        outcome = _read_json(storage, job.result if status == "SUCCEEDED" else job.error)
        links, expires = _links(storage, job, status)
    body = message_body(detail, outcome, links, expires)
    data = encode(body)
    _sns().publish(
        TopicArn=setting(NOTIFY_TOPIC_ENV), Message=data.decode(), Subject=f"sadtalker {status}: {name}"[:100],
        # subscribers filter on these (e.g. an e-mail subscription for failures only)
        MessageAttributes={"status": {"DataType": "String", "StringValue": status},
                           "job_id": {"DataType": "String", "StringValue": name}},
    )
    out: dict[str, Any] = {"status": "published", "job_id": name, "job_status": status}
    url = _notify_url(storage, job) if job is not None else None
    if url:
        try:
            secret = _webhook_secret()
        except Exception as exc:  # the webhook is best effort: the topic has the notification already
            logger.warning("webhook secret unavailable: webhook not sent", extra={"error": type(exc).__name__})
            out["webhook"] = {"delivered": False, "status": None, "attempts": 0}
            return out
        delivery = post_webhook(url, data, secret, f"{name}/{status}", f"job.{status.lower()}")
        out["webhook"] = {"delivered": delivery.delivered, "status": delivery.status, "attempts": delivery.attempts}
        if delivery.delivered:
            logger.info("webhook delivered", extra=out["webhook"])
        else:
            logger.warning("webhook not delivered", extra={**out["webhook"], "errors": delivery.errors})
    logger.info("notification published", extra={"job_status": status})
    return out

"""RecordFailure (light): write ``outputs/<job>/error.json`` and name the job's failure.

Every state's Catch stores Step Functions' ``{"Error", "Cause"}`` at ``$.error`` and comes here with the
whole (small) state data. The failed state is the first stage whose result is missing from the data
(each stage adds its own key: job, prepared, coeffs, plan, rendered, finalized).

The returned ``error`` is always one of OUR names (layers/sadtalker/errors.py): the Fail state uses it
as its error, and moto's interpreter crashes on a Fail whose ErrorPath resolves to a ``States.*`` name.
Mapping of foreign names: an ECS task failure -> FinalizeFailed; Lambda/States timeouts and service
errors -> RenderFailed in RenderChunks, FinalizeFailed in Finalize, TransientError elsewhere (retries
were exhausted); an unexpected Python exception -> the same per-state name, its text kept in the message.
"""

from __future__ import annotations

import json

from sadtalker.errors import ERROR_NAMES
from sadtalker.jobs import JobKeys

from .common import setting, stage_handler, storage_for
from .contract import BUCKET_ENV
from .events import FailureRecord, RecordFailureEvent
from .observability import logger, redact_text

# (key a state adds to the data, state name) in execution order.
PROGRESS = [
    ("job", "ValidateJob"),
    ("prepared", "PreprocessAndAudioFeatures"),
    ("coeffs", "Audio2Coeff"),
    ("plan", "PlanChunks"),
    ("rendered", "RenderChunks"),
    ("finalized", "Finalize"),
    ("checked", "CheckResult"),
]
FALLBACK = {"RenderChunks": "RenderFailed", "Finalize": "FinalizeFailed", "CheckResult": "FinalizeFailed"}
# Parallel branch errors tell which branch failed.
BRANCH_OF = {"NoFaceDetected": "Preprocess", "InvalidImage": "Preprocess", "InvalidAudio": "AudioFeatures"}


def failed_state(data: dict) -> str:
    for key, state in PROGRESS:
        if key not in data:
            return state
    return "Succeeded"


def _cause_message(cause: str | None) -> tuple[str | None, str]:
    """(errorType, errorMessage) from a Lambda error Cause or an ECS task description, else (None, the text)."""
    if not cause:
        return None, ""
    try:
        body = json.loads(cause)
    except ValueError:
        return None, cause.strip()
    if not isinstance(body, dict):
        return None, cause.strip()
    if "Containers" in body:  # runTask.sync: the stopped task
        codes = [c.get("ExitCode") for c in body.get("Containers") or []]
        exited = ", ".join("no exit code" if c is None else f"exit code {c}" for c in codes) or "no container"
        return None, f"{exited} ({body.get('StoppedReason') or 'no reason given'})"
    return body.get("errorType"), str(body.get("errorMessage") or body.get("StoppedReason") or cause).strip()


def classify(error: str, cause: str | None, state: str) -> FailureRecord:
    etype, message = _cause_message(cause)
    name = error if error in ERROR_NAMES else (etype if etype in ERROR_NAMES else None)
    if name is None:
        name = FALLBACK.get(state, "TransientError")
        what = etype or error
        if error == "States.TaskFailed" and state == "Finalize":
            message = f"the finalize task failed: {message or 'no reason given'}"
        elif what.startswith(("States.", "Lambda.")):
            message = f"{state} failed with {what} after its retries: {message or 'no details'}"
        else:
            message = f"{state} failed unexpectedly ({what}): {message or 'no details'}"
    if state == "PreprocessAndAudioFeatures":
        state = BRANCH_OF.get(name, state)
    message = redact_text(" ".join(message.split()))[:1000] or f"{state} failed with {name}"
    return FailureRecord(error=name, message=message, state=state)


def _bucket(data: dict) -> str | None:
    job = data.get("job")
    if isinstance(job, dict) and job.get("bucket"):
        return job["bucket"]
    return setting(BUCKET_ENV)


@stage_handler("record_failure")
def handler(ev: RecordFailureEvent) -> dict:
    state = failed_state(ev.data)
    record = classify(ev.error.Error, ev.error.Cause, state)
    bucket = _bucket(ev.data)
    out = record.model_dump()
    try:
        job = JobKeys(ev.job_id)
    except Exception:  # an invalid execution name cannot own a key; still fail the execution by name
        return out
    if bucket:
        storage = storage_for(bucket)
        if record.state == "CheckResult" and storage.exists(job.finalize_error):
            out["state"] = "Finalize"  # the task recorded its error; CheckResult only raised it
        body = {k: out[k] for k in ("error", "message", "state")} | {"job_id": job.job_id}
        # A finalize task killed between its writes may have left a video without result.json (or both,
        # when a later check failed): a failed job has no result. result.json goes first.
        for key in job.results:
            try:
                storage.delete(key)
            except Exception:  # recording the failure matters more than the cleanup
                logger.warning("could not remove a partial result", extra={"key": key})
        storage.put(job.error, json.dumps(body, indent=2).encode())
        out["error_key"] = f"s3://{bucket}/{job.error}"
    return out

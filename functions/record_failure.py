"""RecordFailure (light): write ``outputs/<job>/error.json`` and name the job's failure.

Every state's Catch stores Step Functions' ``{"Error", "Cause"}`` at ``$.error`` and comes here with the
whole (small) state data. The failed state is the first stage whose result is missing from the data
(each stage adds its own key: job, prepared, coeffs, plan, rendered, enhanced when the plan has
enhancement ranges, finalized).

A Distributed Map (RenderChunks, EnhanceRanges) fails as a whole with States.ExceedToleratedFailureThreshold,
which names neither the chunk nor the child's error: both are read from the failed-results file its
ResultWriter wrote under ``JobKeys.map_results`` (the child's input and its Error/Cause), and the message
names the chunk or range ("render chunk 000050-000075: ...").

The returned ``error`` is always one of OUR names (layers/sadtalker/errors.py): the Fail state uses it
as its error, and moto's interpreter crashes on a Fail whose ErrorPath resolves to a ``States.*`` name.
Mapping of foreign names: an ECS task failure -> FinalizeFailed; Lambda/States timeouts and service
errors -> RenderFailed in RenderChunks, FinalizeFailed in EnhanceRanges and Finalize, TransientError
elsewhere (retries were exhausted); an unexpected Python exception -> the same per-state name, its text
kept in the message.
"""

from __future__ import annotations

import json

from sadtalker.errors import ERROR_NAMES
from sadtalker.hls import fail_stream
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
    ("enhanced", "EnhanceRanges"),
    ("finalized", "Finalize"),
    ("checked", "CheckResult"),
]
FALLBACK = {"RenderChunks": "RenderFailed", "EnhanceRanges": "FinalizeFailed", "Finalize": "FinalizeFailed",
            "CheckResult": "FinalizeFailed"}
# What a Distributed Map's child is, in messages.
MAP_ITEM = {"RenderChunks": "render chunk", "EnhanceRanges": "enhancement range"}
MAP_FAILED = "States.ExceedToleratedFailureThreshold"
# Parallel branch errors tell which branch failed.
BRANCH_OF = {"NoFaceDetected": "Preprocess", "InvalidImage": "Preprocess", "InvalidAudio": "AudioFeatures"}


def failed_state(data: dict) -> str:
    plan = data.get("plan") if isinstance(data.get("plan"), dict) else {}
    for key, state in PROGRESS:
        if key == "enhanced" and not plan.get("num_ranges"):
            continue  # no enhancer: the job goes from RenderChunks straight to Finalize
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
        if error == "States.TaskFailed" and state in ("Finalize", "EnhanceRanges"):
            message = f"the enhancement task failed: {message or 'no reason given'}"
        elif what.startswith(("States.", "Lambda.")):
            message = f"{state} failed with {what} after its retries: {message or 'no details'}"
        else:
            message = f"{state} failed unexpectedly ({what}): {message or 'no details'}"
    if state == "PreprocessAndAudioFeatures":
        state = BRANCH_OF.get(name, state)
    message = redact_text(" ".join(message.split()))[:1000] or f"{state} failed with {name}"
    return FailureRecord(error=name, message=message, state=state)


def failed_child(storage, job: JobKeys) -> tuple[dict, str, str | None] | None:
    """(input, Error, Cause) of the first failed child (lowest start) in the ResultWriter files, or None."""
    rows: list[dict] = []
    for key in storage.list(job.map_results):
        if key.rsplit("/", 1)[-1].startswith("FAILED_"):
            rows += json.loads(storage.get(key))
    children = []
    for row in rows:
        try:
            item = json.loads(row.get("Input") or "{}")
        except ValueError:
            item = {}
        children.append((int(item.get("start", 0)) if isinstance(item, dict) else 0, item, row))
    if not children:
        return None
    _, item, row = min(children, key=lambda c: c[0])
    return item, str(row.get("Error") or "States.Runtime"), row.get("Cause")


def _name_child(record: FailureRecord, storage, job: JobKeys, state: str) -> FailureRecord:
    """A Map that failed as a whole: the failed child's own error, its chunk or range named."""
    try:
        child = failed_child(storage, job)
    except Exception:  # the record matters more than the detail
        logger.warning("could not read the map's failed results", extra={"prefix": job.map_results})
        child = None
    if child is None:
        return record
    item, error, cause = child
    inner = classify(error, cause, state)
    what = f"{MAP_ITEM[state]} {int(item.get('start', 0)):06d}-{int(item.get('end', 0)):06d}"
    # a child whose own message names its chunk keeps it as it is
    message = inner.message if inner.message.startswith(MAP_ITEM[state]) else redact_text(f"{what}: {inner.message}")[:1000]
    return FailureRecord(error=inner.error, message=message, state=state)


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
        if ev.error.Error == MAP_FAILED and record.state in MAP_ITEM:
            record = _name_child(record, storage, job, record.state)
            out = record.model_dump()
        body = {k: out[k] for k in ("error", "message", "state")} | {"job_id": job.job_id}
        # A Finalize killed between its writes may have left a video without result.json (or both, when a
        # later check failed): a failed job has no result. result.json goes first.
        for key in job.results:
            try:
                storage.delete(key)
            except Exception:  # recording the failure matters more than the cleanup
                logger.warning("could not remove a partial result", extra={"key": key})
        storage.put(job.error, json.dumps(body, indent=2).encode())
        # After error.json: a chunk still publishing finds it and removes what it re-creates (sadtalker.hls)
        try:
            fail_stream(storage, job)
        except Exception:  # recording the failure matters more than the cleanup
            logger.warning("could not remove the job's stream", extra={"key": job.stream})
        out["error_key"] = f"s3://{bucket}/{job.error}"
    return out

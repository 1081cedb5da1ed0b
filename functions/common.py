"""What every handler shares: storage/model-store construction, timing records and the wrapper that
turns a stage call into a Lambda handler with logging, tracing and metrics.

Timing records: each stage writes ``work/<job>/timings/<stage>[-<start>-<end>].json`` so Finalize can
report seconds per stage in result.json without threading them through the state payloads.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from sadtalker.errors import SadTalkerError
from sadtalker.jobs import JobKeys
from sadtalker.storage import S3Storage, Storage

from .observability import logger, metrics, metrics_disabled, record_stage_metrics, redact_text, tracer

BUCKET_ENV = "SADTALKER_BUCKET"


def bucket_name(explicit: str | None = None) -> str:
    name = explicit or os.environ.get(BUCKET_ENV)
    if not name:
        raise RuntimeError(f"no bucket configured: set ${BUCKET_ENV}")
    return name


# A factory so the local runtime (and worker processes) can route storage elsewhere.
_storage_factory: Callable[[str], Storage] = lambda bucket: S3Storage(bucket)  # noqa: E731


def set_storage_factory(factory: Callable[[str], Storage] | None) -> None:
    global _storage_factory
    _storage_factory = factory or (lambda bucket: S3Storage(bucket))


def storage_for(bucket: str) -> Storage:
    return _storage_factory(bucket)


def model_store():
    """The model store of this container: $SADTALKER_WEIGHTS or the default directory."""
    from sadtalker.weights import ModelStore

    return ModelStore.open(os.environ.get("SADTALKER_WEIGHTS") or None)


def timing_key(job: JobKeys, stage: str) -> str:
    return f"{job.work}timings/{stage}.json"


def write_timing(storage: Storage, job: JobKeys, stage: str, seconds: float, result: dict[str, Any]) -> None:
    record = {"stage": stage, "seconds": round(seconds, 4)}
    for k in ("frames", "model_load_seconds", "num_frames"):
        if isinstance(result.get(k), (int, float)):
            record[k] = result[k]
    storage.put(timing_key(job, stage), json.dumps(record).encode())


def stage_handler(stage: str) -> Callable:
    """Decorate ``fn(event: dict) -> dict``: correlation id, tracing, metrics, wall time in ``seconds``."""

    def wrap(fn: Callable[[dict], dict]) -> Callable:
        @functools.wraps(fn)
        def handler(event: dict, context: Any = None) -> dict:
            job_id = event.get("job_id") if isinstance(event, dict) else None
            logger.set_correlation_id(job_id)
            logger.append_keys(stage=stage)
            tracer.put_annotation(key="job_id", value=str(job_id))
            t0 = time.perf_counter()
            try:
                result = fn(event)
            except Exception as exc:
                # Named errors keep their class name: it is the errorType Retry/Catch match on. Their message
                # becomes the execution's error cause: no credentials from a user's URL may travel with it.
                logger.warning("stage failed", extra={"error": type(exc).__name__, "error_message": str(exc)})
                if isinstance(exc, SadTalkerError) and redact_text(str(exc)) != str(exc):
                    raise type(exc)(redact_text(str(exc))) from None
                raise
            seconds = time.perf_counter() - t0
            result = dict(result)
            result["handler_seconds"] = round(seconds, 4)
            record_stage_metrics(stage, seconds, result)
            logger.info("stage done", extra={"seconds": round(seconds, 3)})
            return result

        traced = tracer.capture_method(handler)
        if metrics_disabled():  # local runs: no EMF lines on stdout (the cold-start metric ignores the switch)
            return traced
        return metrics.log_metrics(traced, capture_cold_start_metric=True, raise_on_empty_metrics=False)

    return wrap

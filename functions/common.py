"""What every handler shares: the stage decorator, the function's settings and storage, timing records.

``stage_handler(name)`` turns ``fn(event model) -> result model`` into a Lambda handler, typed by the
function's contract (functions/contract.py): the event is parsed with its event model, the result
checked against its result model, the wall time added, the timing record written
(``JobKeys.timing``; Finalize sums them into result.json), the stage metrics emitted.

Settings and storage come from the invocation context: on AWS there is none, so a handler sees its
process environment and the real bucket; the local runtime runs every handler inside a
``FunctionContext`` holding the environment and the S3 policy of that function in the deployed
template, so a handler that reads a variable or touches a key its function does not have fails
locally as it would on AWS.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sadtalker.errors import SadTalkerError
from sadtalker.jobs import JobKeys
from sadtalker.stages import MODEL_LOAD_S
from sadtalker.storage import S3Storage, Storage

from .contract import BUCKET_ENV, CONTRACTS, LINK_EXPIRY_ENV, WEIGHTS_ENV, FunctionContract
from .observability import emit_stage_metrics, logger, redact_text, tracer


@dataclass(frozen=True)
class FunctionContext:
    """One invocation's deployed configuration, as the local runtime enforces it (picklable: render
    workers receive it). ``policy``: the role's S3 statements (``sadtalker.local.policy.S3Policy``)."""

    function: str
    env: dict[str, str]
    policy: Any = None


_context: contextvars.ContextVar[FunctionContext | None] = contextvars.ContextVar("function_context", default=None)
_lambda_context: contextvars.ContextVar[Any] = contextvars.ContextVar("lambda_context", default=None)


@contextlib.contextmanager
def running_as(ctx: FunctionContext) -> Iterator[None]:
    token = _context.set(ctx)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> FunctionContext | None:
    return _context.get()


def deadline() -> float | None:
    """When this invocation is killed, on the ``time.monotonic()`` clock (None outside a Lambda)."""
    ctx = _lambda_context.get()
    remaining = getattr(ctx, "get_remaining_time_in_millis", None)
    return time.monotonic() + remaining() / 1000.0 if callable(remaining) else None


def setting(name: str) -> str | None:
    """An environment variable of this function (its deployed environment, locally)."""
    ctx = _context.get()
    return ctx.env.get(name) if ctx is not None else os.environ.get(name)


def bucket_name() -> str:
    name = setting(BUCKET_ENV)
    if not name:
        raise RuntimeError(f"no bucket configured: set ${BUCKET_ENV}")
    return name


# A factory so the local runtime can route storage elsewhere (tests: a directory).
_storage_factory: Callable[[str], Storage] = lambda bucket: S3Storage(bucket)  # noqa: E731


def set_storage_factory(factory: Callable[[str], Storage] | None) -> None:
    global _storage_factory
    _storage_factory = factory or (lambda bucket: S3Storage(bucket))


def storage_for(bucket: str) -> Storage:
    """The job bucket as this function may use it (locally: limited to its role's S3 policy)."""
    storage = _storage_factory(bucket)
    expiry = setting(LINK_EXPIRY_ENV)
    if expiry:  # the lifetime of the presigned links it writes into documents (the HLS playlists)
        storage.link_expiry_s = int(expiry)
    ctx = _context.get()
    if ctx is None or ctx.policy is None:
        return storage
    from sadtalker.local.policy import GuardedStorage

    return GuardedStorage(storage, ctx.policy)


def model_store():
    """The model store of this container: $SADTALKER_WEIGHTS or the default directory."""
    from sadtalker.weights import ModelStore

    return ModelStore.open(setting(WEIGHTS_ENV) or None)


def timing_record(stage: str, seconds: float, result: BaseModel) -> dict[str, Any]:
    """The one timings shape: stage, wall seconds, and frames / model-load seconds where the stage has them."""
    record: dict[str, Any] = {"stage": stage, "seconds": round(seconds, 4)}
    frames = getattr(result, "frames", None)
    if isinstance(frames, int):
        record["frames"] = frames
    load = getattr(result, "timings", {}).get(MODEL_LOAD_S)
    if isinstance(load, (int, float)):
        record[MODEL_LOAD_S] = load
    return record


def _write_timing(contract: FunctionContract, ev: BaseModel, result: BaseModel, seconds: float) -> None:
    bucket = getattr(ev, "bucket", None) or getattr(result, "bucket", None)
    job = JobKeys(ev.job_id)
    if contract.stage == "render_chunk":
        name = JobKeys.chunk_name(ev.start, ev.end)
    else:
        name = contract.stage
    record = timing_record(name, seconds, result)
    storage_for(bucket).put(job.timing(name), json.dumps(record).encode())


def stage_handler(name: str) -> Callable[[Callable[[Any], BaseModel | dict]], Callable[[Any, Any], dict]]:
    """Decorate ``fn(event) -> result`` of the function ``name`` (a key of CONTRACTS)."""
    contract = CONTRACTS[name]
    assert contract.event is not None and contract.result is not None, f"{name} has no event/result model"

    def wrap(fn: Callable[[Any], BaseModel | dict]) -> Callable[[Any, Any], dict]:
        @functools.wraps(fn)
        def handler(event: Any, context: Any = None) -> dict:
            job_id = event.get("job_id") if isinstance(event, dict) else None
            logger.set_correlation_id(job_id)
            logger.append_keys(stage=contract.stage)
            tracer.put_annotation(key="job_id", value=str(job_id))
            t0 = time.perf_counter()
            token = _lambda_context.set(context)
            try:
                ev = contract.event.parse(event)
                out = fn(ev)
                result = contract.result.model_validate(out.model_dump() if isinstance(out, BaseModel) else out)
                result.handler_seconds = round(time.perf_counter() - t0, 4)
                if contract.records_timing:
                    _write_timing(contract, ev, result, result.handler_seconds)
            except Exception as exc:
                # Named errors keep their class name: it is the errorType Retry/Catch match on. Their message
                # becomes the execution's error cause: no credentials from a user's URL may travel with it.
                logger.warning("stage failed", extra={"error": type(exc).__name__, "error_message": str(exc)})
                if isinstance(exc, SadTalkerError) and redact_text(str(exc)) != str(exc):
                    raise type(exc)(redact_text(str(exc))) from None
                raise
            finally:
                _lambda_context.reset(token)
            emit_stage_metrics(contract, result.handler_seconds, result, context)
            logger.info("stage done", extra={"seconds": round(result.handler_seconds, 3)})
            return result.model_dump(mode="json")

        return tracer.capture_method(handler)

    return wrap

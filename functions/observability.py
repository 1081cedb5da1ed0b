"""Logging, tracing and metrics for every handler (aws-lambda-powertools).

* Logger: JSON lines with the job id as correlation id (``logger.set_correlation_id``).
* Tracer: X-Ray subsegments per stage; disabled outside Lambda (POWERTOOLS_TRACE_DISABLED, set by the
  local runtime) and a no-op if the X-Ray SDK is not installed.
* Metrics (CloudWatch EMF, namespace ``SadTalker``, dimensions from each function's contract): ColdStart,
  StageSeconds, FramesRendered, SecondsPerFrame, ModelLoadSeconds.
"""

from __future__ import annotations

import os
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from .contract import METRICS_NAMESPACE, SERVICE  # noqa: E402

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", SERVICE)

# --- redaction: no credentials in logs, error records or execution causes --------------------------------
REDACTED = "[REDACTED]"
# Field names whose values are never logged (event payloads, extras, nested dicts).
SECRET_FIELD = re.compile(
    r"pass(word|wd)?$|secret|token|credential|authori[sz]ation|api[_-]?key|private[_-]?key|signature|cookie|"
    r"^(aws_)?access[_-]?key([_-]?id)?$|session[_-]?key", re.I,
)
_TEXT_RULES: list[tuple[re.Pattern, str]] = [
    # a URL's query string (presigned URLs carry X-Amz-Credential / X-Amz-Signature / security tokens)
    (re.compile(r"((?:https?|s3)://[^\s?#'\"]+)\?[^\s'\"]*", re.I), r"\1?" + REDACTED),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"), REDACTED),
    # name=value / "name": "value" pairs of secret-looking names inside free text
    # ("name:123" - a code location - is not a pair: a colon needs a space or quotes after it)
    (re.compile(r"(?i)((?:secret|token|password|signature|credential|api[_-]?key)[\w-]*"
                r"(?:\s*=\s*|\s*:\s+|[\"']\s*:\s*)[\"']?)[^\s\"'&,;}]+"), r"\1" + REDACTED),
]


def redact_text(text: str) -> str:
    for pattern, repl in _TEXT_RULES:
        text = pattern.sub(repl, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secret-named fields and credential-looking text replaced."""
    if _depth > 20:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and SECRET_FIELD.search(k) and isinstance(v, str) and v
                    else redact(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, _depth + 1) for v in value]
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, every field passed through ``redact`` first."""

    def serialize(self, log: dict) -> str:
        return super().serialize(redact(dict(log)))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())


class _NoTracer:
    """Stand-in when the X-Ray SDK is absent: same decorator surface, does nothing."""

    def capture_lambda_handler(self, fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)

    def capture_method(self, fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)

    def put_annotation(self, *_a, **_kw) -> None:
        pass


try:
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=SERVICE)
except Exception:  # aws-xray-sdk missing: tracing is optional, never a reason to fail a job
    tracer = _NoTracer()


def metrics_disabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true")


_cold = {"start": True}


def emit_stage_metrics(contract: Any, seconds: float, result: Any, context: Any = None) -> None:
    """One EMF record per invocation, with the contract's dimensions (what the dashboard charts):
    StageSeconds; FramesRendered and SecondsPerFrame where the stage renders frames; ModelLoadSeconds
    where it loaded models. ColdStart once per container, by function name and service.

    A fresh EphemeralMetrics per call: nothing accumulates between invocations of a warm container or
    between handlers sharing one process (the local runtime runs them in threads)."""
    from sadtalker.stages import MODEL_LOAD_S

    if metrics_disabled():
        return
    dims = contract.metric_dimensions
    m = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=dims["service"])
    for key, value in dims.items():
        if key != "service":
            m.add_dimension(name=key, value=value)
    m.add_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=seconds)
    frames = getattr(result, "frames", None)
    if isinstance(frames, int) and frames > 0 and contract.stage in FRAME_STAGES:
        m.add_metric(name="FramesRendered", unit=MetricUnit.Count, value=frames)
        m.add_metric(name="SecondsPerFrame", unit=MetricUnit.Seconds, value=seconds / frames)
    load = (getattr(result, "timings", None) or {}).get(MODEL_LOAD_S)
    if isinstance(load, (int, float)):
        m.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=float(load))
    m.flush_metrics()
    if _cold["start"] and context is not None:
        _cold["start"] = False
        cold = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=dims["service"])
        cold.add_dimension(name="function_name", value=getattr(context, "function_name", contract.name))
        cold.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        cold.flush_metrics()


# Stages whose ``frames`` are frames they produced (CheckResult reports a count it only read).
FRAME_STAGES = ("render_chunk", "finalize")

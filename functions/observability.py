"""Logging, tracing and metrics for every handler (aws-lambda-powertools).

* Logger: JSON lines with the job id as correlation id (``logger.set_correlation_id``).
* Tracer: X-Ray subsegments per stage; disabled outside Lambda (POWERTOOLS_TRACE_DISABLED, set by the
  local runtime) and a no-op if the X-Ray SDK is not installed.
* Metrics (CloudWatch EMF, namespace ``SadTalker``): ColdStart, StageSeconds, FramesRendered,
  SecondsPerFrame, ModelLoadSeconds.
"""

from __future__ import annotations

import os
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sadtalker")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SadTalker")

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
metrics = Metrics(namespace=os.environ["POWERTOOLS_METRICS_NAMESPACE"], service=SERVICE)


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


def record_stage_metrics(stage: str, seconds: float, result: dict) -> None:
    """Stage wall time, and for render/finalize frames and seconds per frame; model load time if reported."""
    # One function per stage on AWS: the stage is metadata, not a dimension (dimensions accumulate
    # in a warm container when the same Metrics object serves several handlers, as it does locally).
    metrics.add_metadata(key="stage", value=stage)
    metrics.add_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=seconds)
    frames = result.get("frames") if isinstance(result, dict) else None
    if isinstance(frames, int) and frames > 0:
        metrics.add_metric(name="FramesRendered", unit=MetricUnit.Count, value=frames)
        metrics.add_metric(name="SecondsPerFrame", unit=MetricUnit.Seconds, value=seconds / frames)
    timings = result.get("timings") if isinstance(result.get("timings"), dict) else {}
    load = next((timings[k] for k in ("load_models_s", "load_s", "model_load_s") if k in timings),
                result.get("model_load_seconds"))
    if isinstance(load, (int, float)):
        metrics.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=float(load))

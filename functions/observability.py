"""Logging, tracing and metrics for every handler (aws-lambda-powertools).

* Logger: JSON lines with the job id as correlation id (``logger.set_correlation_id``).
* Tracer: X-Ray subsegments per stage; disabled outside Lambda (POWERTOOLS_TRACE_DISABLED, set by the
  local runtime) and a no-op if the X-Ray SDK is not installed.
* Metrics (CloudWatch EMF, namespace ``SadTalker``): ColdStart, StageSeconds, FramesRendered,
  SecondsPerFrame, ModelLoadSeconds.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sadtalker")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SadTalker")

logger = Logger(service=SERVICE)
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

"""What a job costs: the one price table, the bill arithmetic, the quote and the actual cost.

* ``Prices``: us-east-1 list prices, the only copy (benchmarks/projection.py imports it).
* ``bill(usage, stack)``: billable quantities (Lambda seconds per stage, Fargate task seconds, state
  transitions, S3 requests) -> dollars. The quote, the actual cost in result.json and the projection all
  go through it.
* ``quote(num_frames, params, stack)``: frames, chunks, enhancement ranges, projected wall time and
  dollars of a job on the deployed stack, from the job's own chunk plan (``plan_chunks.make_plan``) and
  the render cost PlanChunks sizes chunks with. ValidateJob puts it into the job's state (when the
  speech file's header states its length), PlanChunks repeats it with the decoded frame count, ``sadtalker quote`` prints it; a job whose quote
  exceeds ``max_cost_usd`` is refused (``CostLimitExceeded``) before anything is rendered.
* ``actual_cost`` / ``cost_record``: the same bill from the stages' measured handler seconds; Finalize
  writes it next to the job's quote into result.json (``cost``).

Light on purpose (ValidateJob imports it): no torch, no AWS SDK.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .audio.features import FPS
from .errors import CostLimitExceeded
from .params import JobParams
from .stages.plan_chunks import (
    FARGATE_START_S,
    FINALIZE_CPU_S_PER_FRAME,
    SECONDS_PER_FRAME_6VCPU,
    SLOWEST_HOST_FACTOR,
    ChunkPlan,
    enhance_seconds_per_frame,
    make_plan,
)


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices (USD), typed in by hand from the AWS pricing pages; check them before quoting.

    Typed in on 2026-11-26 (the values are the long-standing published ones; no network access was used to
    re-check them on that date)."""

    region: str = "us-east-1"
    date: str = "2026-11-26"
    lambda_gb_s: float = 0.0000166667  # x86, first 6 billion GB-s per month
    lambda_request: float = 0.20 / 1e6
    fargate_vcpu_h: float = 0.04048  # Linux/x86 on-demand
    fargate_gb_h: float = 0.004445
    fargate_ephemeral_gb_h: float = 0.000111  # above the free 20 GB
    sfn_transition: float = 0.025 / 1000  # standard workflows (Distributed Map child executions included)
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000
    s3_gb_month: float = 0.023


PRICES = Prices()

LAMBDA_MB_PER_VCPU = 1769  # AWS: 1,769 MB = 1 vCPU; 10,240 MB = 6 vCPU
LAMBDA_MAX_VCPU = 6
FARGATE_FREE_EPHEMERAL_GB = 20


@dataclass(frozen=True)
class Stack:
    """The sizes of the deployed stack that set a job's bill and its wall time."""

    lambda_mb: dict[str, int]  # stage name -> memory of the Lambda function that runs it
    render_concurrency: int  # render chunks in flight (the Map's MaxConcurrency; 0 = no limit)
    fargate_vcpu: float  # one enhancement task
    fargate_gb: float
    fargate_ephemeral_gb: float
    range_seconds: float | None = None  # PlanChunks' enhancement seconds per range, when the stack sets one

    @classmethod
    def from_contracts(cls, contracts: Iterable[Any], render_concurrency: int, fargate_vcpu: float,
                       fargate_gb: float, fargate_ephemeral_gb: float, range_seconds: float | None = None) -> Stack:
        """``contracts``: functions/contract.py's FunctionContract objects (Lambda ones have a handler)."""
        mb = {c.stage: c.memory_mb for c in contracts if c.handler is not None}
        return cls(mb, render_concurrency, fargate_vcpu, fargate_gb, fargate_ephemeral_gb, range_seconds)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Stack:
        return cls(**body)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lambda_vcpu(self, stage: str) -> float:
        return min(LAMBDA_MAX_VCPU, self.lambda_mb[stage] / LAMBDA_MB_PER_VCPU)


@dataclass
class Usage:
    """The billable quantities of one job."""

    lambda_s: dict[str, float] = field(default_factory=dict)  # stage -> billed seconds over all invocations
    invocations: int = 0
    fargate_task_s: float = 0.0  # summed over the enhancement tasks
    transitions: int = 0
    s3_puts: int = 0
    s3_gets: int = 0

    def add_lambda(self, stage: str, seconds: float, invocations: int = 1) -> None:
        self.lambda_s[stage] = self.lambda_s.get(stage, 0.0) + seconds
        self.invocations += invocations


def bill(usage: Usage, stack: Stack, prices: Prices = PRICES) -> dict[str, float]:
    """Dollars per service and in total (``total``)."""
    gb_s = sum(stack.lambda_mb[stage] / 1024 * s for stage, s in usage.lambda_s.items())
    fargate_per_h = (stack.fargate_vcpu * prices.fargate_vcpu_h + stack.fargate_gb * prices.fargate_gb_h
                     + max(0.0, stack.fargate_ephemeral_gb - FARGATE_FREE_EPHEMERAL_GB) * prices.fargate_ephemeral_gb_h)
    out = {
        "lambda": gb_s * prices.lambda_gb_s + usage.invocations * prices.lambda_request,
        "fargate": usage.fargate_task_s / 3600 * fargate_per_h,
        "step_functions": usage.transitions * prices.sfn_transition,
        "s3_requests": usage.s3_puts * prices.s3_put + usage.s3_gets * prices.s3_get,
    }
    out["total"] = sum(out.values())
    return out


# --- the quote model -------------------------------------------------------------------------------------
# The quote uses PlanChunks' own figures (render and enhancement seconds per frame, the Fargate start) on
# the measured host, not the 1.5x slower host PlanChunks sizes chunks for: it is what a job is expected to
# cost, comparable with result.json's actual cost. The cap holds against every container new.
# Warm handler seconds of the stages around the render on their deployed sizes (benchmarks/results/
# projection.json, rounded up): fixed part + part per second of speech. Together they are a few tenths of
# a cent; the render and the enhancement are the bill.
FIXED_STAGE_S = {"validate_job": 0.5, "preprocess": 1.5, "audio_features": 0.5, "audio2coeff": 0.3,
                 "plan_chunks": 0.2, "finalize": 2.0, "check_result": 0.2}
PER_SPEECH_SECOND_S = {"audio_features": 0.02, "audio2coeff": 0.08, "finalize": 0.01}
# Per render chunk besides its frames: source-image work, the reads and the segment's write (warm).
CHUNK_OVERHEAD_S = 1.5
COLD_START_S = 10.0  # a heavy container image: lazy image load + Python + torch import + weights
SERIAL_FRACTION = 0.10  # Amdahl s for the render on fewer than 6 vCPUs
TRANSITION_S = 0.05  # Step Functions per state transition / task dispatch
MAIN_TRANSITIONS = 16  # the top-level states of one job
TRANSITIONS_PER_ITEM = 3  # a Map item: its child execution's start, task and end


def _speedup(vcpu: float) -> float:
    return 1.0 / (SERIAL_FRACTION + (1.0 - SERIAL_FRACTION) / max(1.0, vcpu))


def render_seconds_per_frame(params: JobParams, stack: Stack) -> float:
    """RenderChunk seconds per frame at the stack's memory (the figure PlanChunks sizes chunks with is
    for 6 vCPU; fewer vCPUs are slower by Amdahl's law)."""
    return SECONDS_PER_FRAME_6VCPU[params.size] * _speedup(LAMBDA_MAX_VCPU) / _speedup(stack.lambda_vcpu("render_chunk"))


@dataclass(frozen=True)
class Quote:
    frames: int
    chunks: int
    chunk_frames: int
    waves: int
    ranges: int
    wall_s: float  # warm containers
    wall_cold_s: float  # every container new
    usd: dict[str, float]  # warm; "total" is the figure
    usd_cold: dict[str, float]
    stack: Stack

    @property
    def total_usd(self) -> float:
        """What the cap holds against: every container new (the most a job is expected to cost)."""
        return self.usd_cold["total"]

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["usd"] = {k: round(v, 5) for k, v in self.usd.items()}
        body["usd_cold"] = {k: round(v, 5) for k, v in self.usd_cold.items()}
        body["wall_s"], body["wall_cold_s"] = round(self.wall_s, 1), round(self.wall_cold_s, 1)
        body["total_usd"] = round(self.total_usd, 5)
        return body


def _job(plan: ChunkPlan, params: JobParams, stack: Stack, cold: bool) -> tuple[float, Usage]:
    """(wall seconds, usage) of one job on the stack, from its plan."""
    seconds = plan.num_frames / FPS
    cold_s = COLD_START_S if cold else 0.0
    use = Usage()
    for stage in ("validate_job", "preprocess", "audio_features", "audio2coeff", "plan_chunks", "finalize",
                  "check_result"):
        light = stage in ("validate_job", "plan_chunks", "check_result")
        s = FIXED_STAGE_S[stage] + PER_SPEECH_SECOND_S.get(stage, 0.0) * seconds + (0.0 if light else cold_s)
        use.add_lambda(stage, s)
    before = (use.lambda_s["validate_job"] + max(use.lambda_s["preprocess"], use.lambda_s["audio_features"])
              + use.lambda_s["audio2coeff"] + use.lambda_s["plan_chunks"])
    after = use.lambda_s["finalize"] + use.lambda_s["check_result"]

    spf = render_seconds_per_frame(params, stack)
    compose = 0.0 if params.enhancer else FINALIZE_CPU_S_PER_FRAME["compose"]  # paste-back + segment encode
    chunk_s = [CHUNK_OVERHEAD_S + (c["end"] - c["start"]) * (spf + compose) for c in plan.chunks]
    conc = plan.max_concurrency if plan.max_concurrency > 0 else len(plan.chunks)
    waves = math.ceil(len(plan.chunks) / conc)
    render_wall = waves * max(chunk_s) + (cold_s if cold else 0.0)
    use.add_lambda("render_chunk", sum(chunk_s) + min(len(plan.chunks), conc) * cold_s, len(plan.chunks))
    items = len(plan.chunks)

    enhance_wall = 0.0
    ranges = plan.ranges
    if ranges:
        # paste-back, enhancers, encode on the measured host
        per_frame = enhance_seconds_per_frame(params, stack.fargate_vcpu) / SLOWEST_HOST_FACTOR
        task_s = [FARGATE_START_S + (r["end"] - r["start"]) * per_frame for r in ranges]
        enhance_wall = max(task_s)  # the tasks run side by side
        use.fargate_task_s += sum(task_s)
        items += len(ranges)
    use.transitions = MAIN_TRANSITIONS + TRANSITIONS_PER_ITEM * items
    segments = len(ranges) or len(plan.chunks)
    # reads: coefficients, face, source, plan per chunk; a range reads its chunks; Finalize its segments
    use.s3_gets = 12 + 4 * len(plan.chunks) + (len(plan.chunks) + 3 * len(ranges) if ranges else 0) + segments
    # writes: a chunk or segment + timing per item, a playlist update per segment, the results
    use.s3_puts = 12 + 2 * items + segments
    wall = before + render_wall + enhance_wall + after + use.transitions * TRANSITION_S
    return wall, use


def quote_plan(plan: ChunkPlan, params: JobParams, stack: Stack, prices: Prices = PRICES) -> Quote:
    warm_s, warm = _job(plan, params, stack, cold=False)
    cold_s, cold = _job(plan, params, stack, cold=True)
    conc = plan.max_concurrency if plan.max_concurrency > 0 else len(plan.chunks)
    return Quote(frames=plan.num_frames, chunks=len(plan.chunks), chunk_frames=plan.chunk_frames,
                 waves=math.ceil(len(plan.chunks) / conc), ranges=len(plan.ranges), wall_s=warm_s,
                 wall_cold_s=cold_s, usd=bill(warm, stack, prices), usd_cold=bill(cold, stack, prices), stack=stack)


def quote(num_frames: int, params: JobParams, stack: Stack, prices: Prices = PRICES) -> Quote:
    """The quote of a job of ``num_frames`` frames: its plan is PlanChunks' own (``make_plan``)."""
    plan = make_plan(num_frames, params, stack.render_concurrency, stack.fargate_vcpu, stack.range_seconds)
    return quote_plan(plan, params, stack, prices)


def frames_of(seconds: float) -> int:
    """The frame count AudioFeatures gives ``seconds`` of speech (one frame per 1/25 s, at least one)."""
    return max(1, int(seconds * FPS))


def quote_before_decoding(params: JobParams, audio: dict[str, Any], stack: Stack) -> Quote | None:
    """ValidateJob's quote, from the speech length the file's header states (``media_probe``: WAV, FLAC);
    None when only decoding tells (PlanChunks quotes the decoded frame count then). Raises
    ``CostLimitExceeded`` over the cap."""
    seconds = audio.get("seconds")
    if not seconds:
        return None
    q = quote(frames_of(min(float(seconds), params.max_audio_seconds)), params, stack)
    check_cost_cap(q, params)
    return q


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def check_cost_cap(q: Quote, params: JobParams) -> None:
    """Refuse a job whose quote exceeds its ``max_cost_usd`` (nothing is rendered)."""
    cap = params.max_cost_usd
    if cap is not None and q.total_usd > cap:
        raise CostLimitExceeded(
            f"this job is quoted at ${q.total_usd:.3f} ({q.frames} frames, {_count(q.chunks, 'render chunk')}"
            f"{', ' + _count(q.ranges, 'enhancement range') if q.ranges else ''}), more than its max_cost_usd of "
            f"${cap:.3f}; "
            "raise max_cost_usd, shorten the speech, or choose no enhancer"
        )


# --- the actual cost -------------------------------------------------------------------------------------
def actual_cost(timings: dict[str, Any], plan: ChunkPlan, stack: Stack, prices: Prices = PRICES) -> dict[str, Any]:
    """The bill from the stages' measured handler seconds (result.json's ``timings``: stage -> seconds,
    ``render_chunks`` / ``enhance_ranges`` summed over their records, a stage's dict by its ``total_s``).

    Counts what the handlers measured: billed init of cold containers and S3 requests are not in it."""
    use = Usage(transitions=MAIN_TRANSITIONS + TRANSITIONS_PER_ITEM * (len(plan.chunks) + len(plan.ranges)))
    for stage, value in timings.items():
        seconds = float(value.get("total_s", 0.0)) if isinstance(value, dict) else float(value)
        if stage == "render_chunks":
            use.add_lambda("render_chunk", seconds, int(timings.get("render_chunk_count", 1)))
        elif stage == "enhance_ranges":
            use.fargate_task_s += seconds
        elif stage in stack.lambda_mb:
            use.add_lambda(stage, seconds)
    usd = bill(use, stack, prices)
    return {"usd": {k: round(v, 5) for k, v in usd.items()}, "billed_s": {k: round(v, 3) for k, v in use.lambda_s.items()},
            "fargate_task_s": round(use.fargate_task_s, 3),
            "note": "measured handler seconds; excludes cold-start init and S3 requests"}


def cost_record(timings: dict[str, Any], plan: ChunkPlan, params: JobParams, stack: Stack,
                prices: Prices = PRICES) -> dict[str, Any]:
    """result.json's ``cost``: the job's quote (its own plan) next to what its measured seconds cost."""
    stack = replace(stack, render_concurrency=plan.max_concurrency)
    q = quote_plan(plan, params, stack, prices)
    return {"quote_usd": round(q.usd["total"], 5), "quote_cold_usd": round(q.total_usd, 5),
            "actual": actual_cost(timings, plan, stack, prices), "prices": f"{prices.region} {prices.date}"}

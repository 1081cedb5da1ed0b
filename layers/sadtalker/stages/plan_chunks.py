"""PlanChunks: split the clip's frame range into render chunks (the Map's items).

A chunk is ``{"start": s, "end": e}`` (half-open frame indices into the job's one coefficient file).
Chunks are ``params.chunk_frames`` long except the last; when the job does not set it, ``auto_chunk_frames``
chooses it from the measured render cost (benchmarks/stages.py, docs/performance.md): as many chunks as
the Map runs at once (one wave: more chunks only add per-chunk overhead, fewer leave slots idle), but at
least ``MIN_CHUNK_FRAMES`` (the per-chunk overhead - cold start, model load, source work - stays small)
and at most what renders in ``CHUNK_TIME_BUDGET_S`` (well inside Lambda's 15 minutes). The number of
chunks is capped at ``MAX_CHUNKS``: each Map iteration costs about a dozen execution-history events and
a standard execution allows 25,000, so a very long clip gets longer chunks instead of more of them.

The plan is made once, by the PlanChunks state, and written to ``JobKeys.plan``: every later state reads
that object and nothing computes it again (a second computation with another concurrency once made
Finalize ask for chunks that were never rendered). The Map concurrency arrives in PlanChunks' event from
the state data, which the ASL fills from the same placeholder as the Map's MaxConcurrency.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..audio.features import FPS
from ..errors import ClipTooLong, InvalidChunk, InvalidParams
from ..jobs import JobKeys
from ..params import JobParams
from ..storage import Storage

MAX_CHUNKS = 1000
MIN_CHUNK_FRAMES = 16
UNLIMITED_CONCURRENCY = 40  # what "no limit" (MaxConcurrency 0) is planned as: the inline Map's ceiling
CHUNK_TIME_BUDGET_S = 600.0  # of the 900 s Lambda timeout: room for a cold start and the write
# Render seconds per frame on a 10,240 MB (6 vCPU) RenderChunk, from benchmarks/results/stages.json
# (optimized fp32 path, 1-thread CPU seconds / the 6-vCPU speedup of docs/performance.md); 512 px = the 256
# figure x 4.22, the 512/256 CPU ratio measured side by side (benchmarks/results/render_sizes.json).
SECONDS_PER_FRAME_6VCPU = {256: 2.6, 512: 11.0}
# Lambda does not let a function choose its CPU; the figures above were measured on a Sapphire Rapids-class
# Xeon. Chunks are sized for a host this much slower (an older Xeon generation), and always at the fp32
# cost: precision=bf16 falls back to fp32 on a host without native bf16, so its speed cannot be counted on.
SLOWEST_HOST_FACTOR = 1.5


def estimated_seconds_per_frame(params: JobParams) -> float:
    """Render seconds per frame on the slowest host the stack may get, whatever the precision."""
    return SECONDS_PER_FRAME_6VCPU[params.size] * SLOWEST_HOST_FACTOR


def max_chunk_frames(params: JobParams) -> int:
    """The longest chunk that renders within the time budget (a multiple of the batch size)."""
    bs = params.batch_size
    return max(bs, int(CHUNK_TIME_BUDGET_S // estimated_seconds_per_frame(params)) // bs * bs)


def check_chunk_budget(params: JobParams) -> None:
    """A user's chunk_frames must fit the same budget as automatic sizing: refused before any compute."""
    most = max_chunk_frames(params)
    if params.chunk_frames is not None and params.chunk_frames > most:
        raise InvalidParams(
            f"parameter 'chunk_frames' = {params.chunk_frames} is too long: a render chunk of that many frames at "
            f"size {params.size} may not finish within RenderChunk's time limit; at most {most} (or leave it "
            "unset for automatic sizing)"
        )


def auto_chunk_frames(num_frames: int, params: JobParams, concurrency: int) -> int:
    """Chunk length for a job that did not set ``chunk_frames`` (a multiple of the batch size).

    ``concurrency`` 0 means "no limit" (the Map's own meaning): the clip is split as if 40 ran at once."""
    concurrency = concurrency if concurrency > 0 else UNLIMITED_CONCURRENCY
    bs = params.batch_size
    # chunk boundaries on batch multiples keep the chunked render bit-identical to one pass
    by_time = max_chunk_frames(params)
    one_wave = math.ceil(max(math.ceil(num_frames / concurrency), MIN_CHUNK_FRAMES) / bs) * bs
    return min(one_wave, by_time)


@dataclass(frozen=True)
class ChunkPlan:
    """The render chunks of one job, as PlanChunks wrote them to ``JobKeys.plan``."""

    num_frames: int
    chunk_frames: int
    max_concurrency: int
    chunks: list[dict[str, int]]

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def read(cls, storage: Storage, job: JobKeys) -> ChunkPlan:
        try:
            body = json.loads(storage.require(job.plan, "chunk plan"))
            plan = cls(**body)
        except (TypeError, ValueError):
            raise InvalidChunk(f"the chunk plan {job.plan} is not a plan written by PlanChunks") from None
        check_plan(plan.chunks, plan.num_frames)
        return plan


def make_plan(num_frames: int, params: JobParams, concurrency: int) -> ChunkPlan:
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise InvalidChunk(f"the clip has {num_frames!r} frames; at least one frame is needed to plan render chunks")
    chosen = params.chunk_frames or auto_chunk_frames(num_frames, params, concurrency)
    size = max(chosen, math.ceil(num_frames / MAX_CHUNKS))
    if size > max_chunk_frames(params):
        longest = MAX_CHUNKS * max_chunk_frames(params) / FPS
        raise InvalidParams(
            f"the clip has {num_frames} frames: at size {params.size} that needs more than {MAX_CHUNKS} render "
            f"chunks that each finish in time; at most {longest:.0f} s of speech can be rendered (max_audio_seconds)"
        )
    chunks = [{"start": s, "end": min(s + size, num_frames)} for s in range(0, num_frames, size)]
    return ChunkPlan(num_frames=num_frames, chunk_frames=size, max_concurrency=concurrency, chunks=chunks)


def plan_chunks(num_frames: int, params: JobParams, concurrency: int) -> list[dict[str, int]]:
    return make_plan(num_frames, params, concurrency).chunks


def check_plan(chunks: list[dict[str, int]], num_frames: int) -> None:
    """The chunks must tile [0, num_frames) in order without gaps or overlaps (finalize relies on it)."""
    pos = 0
    for c in chunks:
        if c["start"] != pos or c["end"] <= c["start"]:
            raise InvalidChunk(f"render chunk {c['start']}-{c['end']} does not continue the clip at frame {pos}")
        pos = c["end"]
    if pos != num_frames:
        raise InvalidChunk(f"the render chunks cover {pos} frames but the clip has {num_frames}")


# --- admission: will the job finish within the stack's time limits? --------------------------------------
# CPU seconds per output frame of Finalize on the measured host (benchmarks/results/stages.json,
# docs/performance.md): paste-back + H.264/AAC encode, GFPGAN, RealESRGAN x2 (only with an enhancer).
FINALIZE_CPU_S_PER_FRAME = {"compose": 0.03, "gfpgan": 4.8, "realesrgan": 5.5}
BEFORE_RENDER_S = 180.0  # ValidateJob .. PlanChunks, cold starts included (measured well under a minute warm)
MARGIN = 0.9  # a projection must leave a tenth of each limit unused


@dataclass(frozen=True)
class Projection:
    render_s: float
    finalize_s: float
    finalize_on_fargate: bool

    @property
    def total_s(self) -> float:
        return BEFORE_RENDER_S + self.render_s + self.finalize_s


def project(plan: ChunkPlan, params: JobParams, finalize_vcpus: float, lambda_max_frames: int) -> Projection:
    """Wall time of the render waves and of Finalize for this plan, at the slowest-host costs."""
    concurrency = plan.max_concurrency if plan.max_concurrency > 0 else UNLIMITED_CONCURRENCY
    waves = math.ceil(len(plan.chunks) / concurrency)
    render_s = waves * plan.chunk_frames * estimated_seconds_per_frame(params)
    per_frame = FINALIZE_CPU_S_PER_FRAME["compose"]
    if params.enhancer:
        per_frame += FINALIZE_CPU_S_PER_FRAME["gfpgan"]
        if params.background_enhancer:
            per_frame += FINALIZE_CPU_S_PER_FRAME["realesrgan"]
    fargate = bool(params.enhancer) or plan.num_frames > lambda_max_frames
    vcpus = finalize_vcpus if fargate else 1.0  # the Lambda path is paste-back + encode: one core's work
    finalize_s = plan.num_frames * per_frame * SLOWEST_HOST_FACTOR / max(1.0, vcpus)
    return Projection(render_s, finalize_s, fargate)


def check_time_limits(plan: ChunkPlan, params: JobParams, finalize_vcpus: float, lambda_max_frames: int,
                      limits: dict[str, int]) -> Projection:
    """Refuse (ClipTooLong) a job whose projection passes a limit of the state machine: nothing is rendered.

    ``limits``: TimeoutSeconds of the execution and of the states (statemachine.timeouts())."""
    p = project(plan, params, finalize_vcpus, lambda_max_frames)
    finalize_limit = limits["Finalize"] if p.finalize_on_fargate else limits["FinalizeLambda"]
    seconds = plan.num_frames / FPS
    for what, value, limit in (("Finalize", p.finalize_s, finalize_limit), ("the job", p.total_s, limits["execution"])):
        if value > MARGIN * limit:
            longest = seconds * MARGIN * limit / value
            raise ClipTooLong(
                f"a {seconds:.0f} s clip with these settings would need about {value / 60:.0f} minutes for {what}, "
                f"more than its limit of {limit / 60:.0f} minutes; at most about {longest:.0f} s of speech fits "
                "(or choose no enhancer, or a deployment with a larger Finalize task)"
            )
    return p

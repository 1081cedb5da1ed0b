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

With an enhancer the plan also has enhancement RANGES: runs of whole render chunks, each enhanced and
encoded by one Fargate task of the EnhanceRanges Map (``enhance_ranges``). Without one, every render
chunk pastes back and encodes its own segment. ``ChunkPlan.segments`` is the ordered list of the job's
video segments either way; Finalize concatenates exactly those. PlanChunks writes the chunks and the
ranges as JSON arrays too (``JobKeys.chunk_items`` / ``range_items``): the Maps read their items there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..audio.features import FPS
from ..errors import ClipTooLong, InvalidChunk, InvalidParams
from ..jobs import JobKeys
from ..params import JobParams
from ..storage import Storage

MAX_CHUNKS = 1000
MIN_CHUNK_FRAMES = 16
# What "no limit" (MaxConcurrency 0) is planned as: chunks stay at least a one-wave share of 40, so a
# deployment without a limit does not split a clip into the smallest chunks (per-chunk overhead).
UNLIMITED_CONCURRENCY = 40
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
    """The render chunks (and enhancement ranges) of one job, as PlanChunks wrote them to ``JobKeys.plan``."""

    num_frames: int
    chunk_frames: int
    max_concurrency: int
    chunks: list[dict[str, int]]
    ranges: list[dict[str, int]] = field(default_factory=list)  # [] without an enhancer

    @property
    def segments(self) -> list[dict[str, int]]:
        """The job's video segments in order: one per enhancement range, or one per render chunk."""
        return self.ranges or self.chunks

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    def write(self, storage: Storage, job: JobKeys) -> None:
        """The item arrays first, the plan last: a plan that exists has its items."""
        storage.put(job.chunk_items, json.dumps(self.chunks).encode())
        storage.put(job.range_items, json.dumps(self.ranges).encode())
        storage.put(job.plan, self.to_json())

    @classmethod
    def read(cls, storage: Storage, job: JobKeys) -> ChunkPlan:
        try:
            body = json.loads(storage.require(job.plan, "chunk plan"))
            plan = cls(**body)
        except (TypeError, ValueError):
            raise InvalidChunk(f"the chunk plan {job.plan} is not a plan written by PlanChunks") from None
        check_plan(plan.chunks, plan.num_frames)
        if plan.ranges:
            check_plan(plan.ranges, plan.num_frames, "enhancement range")
            bounds = {c["start"] for c in plan.chunks}
            if any(r["start"] not in bounds for r in plan.ranges):
                raise InvalidChunk(f"the chunk plan {job.plan} has an enhancement range that splits a render chunk")
        return plan


def make_plan(num_frames: int, params: JobParams, concurrency: int, finalize_vcpus: float = 4.0,
              range_seconds: float | None = None) -> ChunkPlan:
    """The job's chunks, and with an enhancer its ranges for tasks of ``finalize_vcpus`` (``range_seconds``:
    the enhancement seconds one range aims at, RANGE_TARGET_S unless the deployment sets another)."""
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
    ranges = enhance_ranges(chunks, params, finalize_vcpus, range_seconds) if params.enhancer else []
    return ChunkPlan(num_frames=num_frames, chunk_frames=size, max_concurrency=concurrency, chunks=chunks,
                     ranges=ranges)


def plan_chunks(num_frames: int, params: JobParams, concurrency: int) -> list[dict[str, int]]:
    return make_plan(num_frames, params, concurrency).chunks


def check_plan(chunks: list[dict[str, int]], num_frames: int, what: str = "render chunk") -> None:
    """The chunks (or ranges) must tile [0, num_frames) in order without gaps or overlaps (finalize relies on it)."""
    pos = 0
    for c in chunks:
        if c["start"] != pos or c["end"] <= c["start"]:
            raise InvalidChunk(f"{what} {c['start']}-{c['end']} does not continue the clip at frame {pos}")
        pos = c["end"]
    if pos != num_frames:
        raise InvalidChunk(f"the {what}s cover {pos} frames but the clip has {num_frames}")


# --- enhancement ranges ------------------------------------------------------------------------------------
# CPU seconds per output frame of the enhancement on the measured host (benchmarks/results/stages.json,
# docs/performance.md): paste-back + H.264 encode, GFPGAN, RealESRGAN x2 (only with a background enhancer).
FINALIZE_CPU_S_PER_FRAME = {"compose": 0.03, "gfpgan": 4.8, "realesrgan": 5.5}
# Enhancement seconds one range aims at. A range's task pays a Fargate start first (FARGATE_START_S:
# placement, the ~2.2 GB enhancer image, model load); ranges of this length keep that overhead under about
# half of the work, while all ranges run at once, so the EnhanceRanges wall time stays near start + 150 s.
RANGE_TARGET_S = 150.0
# At most this many range tasks per job: 40 tasks of 4 vCPU already need a Fargate vCPU quota of 160 for
# one enhanced job (docs/aws.md), and every range pays a billed task start; a longer clip gets longer ranges.
MAX_RANGES = 40
# Not measured (it needs an AWS account): task placement + the enhancer image pull + model load, generously.
FARGATE_START_S = 120.0


def enhance_seconds_per_frame(params: JobParams, vcpus: float) -> float:
    """Wall seconds per frame of paste-back + enhancement + encode on a task of ``vcpus``, slowest host."""
    cpu = FINALIZE_CPU_S_PER_FRAME["compose"]
    if params.enhancer:
        cpu += FINALIZE_CPU_S_PER_FRAME["gfpgan"]
        if params.background_enhancer:
            cpu += FINALIZE_CPU_S_PER_FRAME["realesrgan"]
    return cpu * SLOWEST_HOST_FACTOR / max(1.0, vcpus)


def enhance_ranges(chunks: list[dict[str, int]], params: JobParams, vcpus: float,
                   range_seconds: float | None = None) -> list[dict[str, int]]:
    """Runs of whole chunks, each about ``range_seconds`` of enhancement (at least one chunk), at most MAX_RANGES."""
    num_frames = chunks[-1]["end"]
    target = RANGE_TARGET_S if range_seconds is None else range_seconds
    frames = max(target / enhance_seconds_per_frame(params, vcpus), math.ceil(num_frames / MAX_RANGES))
    ranges: list[dict[str, int]] = []
    for c in chunks:
        # extend the open range while it stays within the target; a chunk alone may exceed it
        if ranges and c["end"] - ranges[-1]["start"] <= frames:
            ranges[-1]["end"] = c["end"]
        else:
            ranges.append(dict(c))
    while len(ranges) > MAX_RANGES:  # whole chunks cannot always meet the cap: merge the shortest neighbours
        i = min(range(len(ranges) - 1), key=lambda k: ranges[k + 1]["end"] - ranges[k]["start"])
        ranges[i:i + 2] = [{"start": ranges[i]["start"], "end": ranges[i + 1]["end"]}]
    return ranges


# --- admission: will the job finish within the stack's time limits? --------------------------------------
BEFORE_RENDER_S = 180.0  # ValidateJob .. PlanChunks, cold starts included (measured well under a minute warm)
# Finalize: a cold start, reading the segments, the concat (the video is copied, only the audio is
# encoded), the preview, the writes. Generous: measured at a few seconds for a minute of video.
FINALIZE_S = 60.0
MARGIN = 0.9  # a projection must leave a tenth of each limit unused


@dataclass(frozen=True)
class Projection:
    render_s: float  # the RenderChunks waves (render, and without an enhancer paste-back + encode)
    enhance_s: float  # the EnhanceRanges tasks (0 without an enhancer): start + the longest range
    finalize_s: float  # the concat

    @property
    def total_s(self) -> float:
        return BEFORE_RENDER_S + self.render_s + self.enhance_s + self.finalize_s


def project(plan: ChunkPlan, params: JobParams, finalize_vcpus: float) -> Projection:
    """Wall time of the render waves, the enhancement ranges and Finalize for this plan, at the slowest-host costs."""
    concurrency = plan.max_concurrency if plan.max_concurrency > 0 else UNLIMITED_CONCURRENCY
    waves = math.ceil(len(plan.chunks) / concurrency)
    per_frame = estimated_seconds_per_frame(params)
    if not params.enhancer:  # the chunk pastes back and encodes its own segment
        per_frame += FINALIZE_CPU_S_PER_FRAME["compose"] * SLOWEST_HOST_FACTOR
    render_s = waves * plan.chunk_frames * per_frame
    enhance_s = 0.0
    if plan.ranges:
        longest = max(r["end"] - r["start"] for r in plan.ranges)  # all ranges run at once (MAX_RANGES)
        enhance_s = FARGATE_START_S + longest * enhance_seconds_per_frame(params, finalize_vcpus)
    return Projection(render_s, enhance_s, FINALIZE_S)


def check_time_limits(plan: ChunkPlan, params: JobParams, finalize_vcpus: float,
                      limits: dict[str, int]) -> Projection:
    """Refuse (ClipTooLong) a job whose projection passes a limit of the state machine: nothing is rendered.

    ``limits``: TimeoutSeconds of the execution and of the states (statemachine.timeouts()); the
    enhancement is held against the EnhanceRanges state's."""
    p = project(plan, params, finalize_vcpus)
    seconds = plan.num_frames / FPS
    checks = [("the job", p.total_s, limits["execution"])]
    if plan.ranges:
        checks.insert(0, ("its enhancement", p.enhance_s, limits["EnhanceRanges"]))
    for what, value, limit in checks:
        if value > MARGIN * limit:
            longest = seconds * MARGIN * limit / value
            raise ClipTooLong(
                f"a {seconds:.0f} s clip with these settings would need about {value / 60:.0f} minutes for {what}, "
                f"more than its limit of {limit / 60:.0f} minutes; at most about {longest:.0f} s of speech fits "
                "(or choose no enhancer, or a deployment with larger enhancement tasks)"
            )
    return p

"""PlanChunks (light: never imports torch): the one chunk plan of the job, written to ``JobKeys.plan``;
the Map iterates over its chunks and Finalize reads it back."""

from __future__ import annotations

from sadtalker.jobs import JobKeys
from sadtalker.stages.plan_chunks import make_plan

from .common import stage_handler, storage_for
from .events import PlanChunksEvent, PlanChunksResult


@stage_handler("plan_chunks")
def handler(ev: PlanChunksEvent) -> PlanChunksResult:
    job = JobKeys(ev.job_id)
    plan = make_plan(ev.num_frames, ev.job_params(), ev.max_concurrency)
    storage_for(ev.bucket).put(job.plan, plan.to_json())
    return PlanChunksResult(plan_key=job.plan, chunks=plan.chunks, num_chunks=len(plan.chunks),
                            num_frames=plan.num_frames, chunk_frames=plan.chunk_frames)

"""PlanChunks (light: never imports torch): the one chunk plan of the job, written to ``JobKeys.plan``,
with its render chunks and enhancement ranges as the item arrays the Maps read (``JobKeys.chunk_items``,
``range_items``). Before anything is rendered, the plan's projected times are held against the state
machine's own timeouts: a job that could not finish is refused here (ClipTooLong) instead of failing
after its rendering was paid for."""

from __future__ import annotations

from sadtalker.jobs import JobKeys
from sadtalker.pricing import check_cost_cap, quote_plan
from sadtalker.stages.plan_chunks import check_time_limits, make_plan
from statemachine import timeouts

from .common import setting, stage_handler, storage_for
from .contract import ENHANCE_RANGE_SECONDS_ENV, FINALIZE_TASK_VCPUS, FINALIZE_VCPUS_ENV
from .events import PlanChunksEvent, PlanChunksResult
from .quote import deployed_stack


@stage_handler("plan_chunks")
def handler(ev: PlanChunksEvent) -> PlanChunksResult:
    job = JobKeys(ev.job_id)
    params = ev.job_params()
    vcpus = float(setting(FINALIZE_VCPUS_ENV) or FINALIZE_TASK_VCPUS)
    range_seconds = setting(ENHANCE_RANGE_SECONDS_ENV)
    plan = make_plan(ev.num_frames, params, ev.max_concurrency, vcpus,
                     float(range_seconds) if range_seconds else None)
    p = check_time_limits(plan, params, vcpus, timeouts())
    quote = quote_plan(plan, params, deployed_stack(ev.max_concurrency))
    check_cost_cap(quote, params)  # ValidateJob can quote only a speech file whose header states its length
    plan.write(storage_for(ev.bucket), job)
    return PlanChunksResult(plan_key=job.plan, chunk_items=job.chunk_items, range_items=job.range_items,
                            num_chunks=len(plan.chunks), num_ranges=len(plan.ranges),
                            num_frames=plan.num_frames, chunk_frames=plan.chunk_frames,
                            projected_s={"render": round(p.render_s, 1), "enhance": round(p.enhance_s, 1),
                                         "finalize": round(p.finalize_s, 1), "job": round(p.total_s, 1)},
                            quote=quote.to_dict())

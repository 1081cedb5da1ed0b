"""PlanChunks (light: never imports torch): the Map's chunk descriptors."""

from __future__ import annotations

from sadtalker.params import JobParams
from sadtalker.stages.plan_chunks import plan_chunks

from .common import stage_handler
from .events import PlanChunksEvent, PlanChunksResult


@stage_handler("plan_chunks")
def handler(event: dict) -> dict:
    ev = PlanChunksEvent.parse(event)
    chunks = plan_chunks(ev.num_frames, JobParams.load(ev.params))
    return PlanChunksResult(chunks=chunks, num_chunks=len(chunks), num_frames=ev.num_frames).model_dump()

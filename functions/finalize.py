"""Finalize (the Lambda, every job): the plan's video segments concatenated without re-encoding the video,
one AAC track, the preview, result.json last (sadtalker.stages.finalize)."""

from __future__ import annotations

from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for
from .events import FinalizeEvent
from .quote import deployed_stack


@stage_handler("finalize_lambda")
def handler(ev: FinalizeEvent) -> dict:
    from sadtalker.stages import finalize as stage

    # the bill does not depend on the concurrency: the plan's own is used
    return stage.finalize(storage_for(ev.bucket), JobKeys(ev.job_id), model_store(), deployed_stack(0))

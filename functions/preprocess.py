"""Preprocess: face detection, crop, 3DMM coefficients of the source photo."""

from __future__ import annotations

from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for
from .events import PreprocessEvent


@stage_handler("preprocess")
def handler(ev: PreprocessEvent) -> dict:
    from sadtalker.stages import preprocess as stage

    return stage.preprocess(storage_for(ev.bucket), JobKeys(ev.job_id), ev.image_key, ev.job_params(), model_store())

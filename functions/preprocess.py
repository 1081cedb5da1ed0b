"""Preprocess: face detection, crop, 3DMM coefficients of the source photo."""

from __future__ import annotations

import time

from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for, write_timing
from .events import PreprocessEvent


def run(ev: PreprocessEvent, storage) -> dict:
    from sadtalker.stages import preprocess as stage

    job = JobKeys(ev.job_id)
    t0 = time.perf_counter()
    out = stage.preprocess(storage, job, ev.image_key, ev.job_params(), model_store())
    write_timing(storage, job, "preprocess", time.perf_counter() - t0, out)
    return dict(out)


@stage_handler("preprocess")
def handler(event: dict) -> dict:
    ev = PreprocessEvent.parse(event)
    return run(ev, storage_for(ev.bucket))

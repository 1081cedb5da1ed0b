"""Audio2Coeff: the whole clip's expression + pose coefficients, once per job (seeded)."""

from __future__ import annotations

import time

from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for, write_timing
from .events import Audio2CoeffEvent


def run(ev: Audio2CoeffEvent, storage) -> dict:
    from sadtalker.stages import audio2coeff as stage

    job = JobKeys(ev.job_id)
    t0 = time.perf_counter()
    out = dict(stage.audio2coeff(storage, job, ev.job_params(), model_store()))
    write_timing(storage, job, "audio2coeff", time.perf_counter() - t0, out)
    return out


@stage_handler("audio2coeff")
def handler(event: dict) -> dict:
    ev = Audio2CoeffEvent.parse(event)
    return run(ev, storage_for(ev.bucket))

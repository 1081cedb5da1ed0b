"""Audio2Coeff: the whole clip's expression + pose coefficients, once per job (seeded)."""

from __future__ import annotations

from sadtalker.jobs import JobKeys

from .common import model_store, stage_handler, storage_for
from .events import Audio2CoeffEvent


@stage_handler("audio2coeff")
def handler(ev: Audio2CoeffEvent) -> dict:
    from sadtalker.stages import audio2coeff as stage

    return stage.audio2coeff(storage_for(ev.bucket), JobKeys(ev.job_id), ev.job_params(), model_store())

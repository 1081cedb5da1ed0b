"""AudioFeatures: decode the speech, resample to 16 kHz, mel windows per video frame."""

from __future__ import annotations

import time

from sadtalker.jobs import JobKeys

from .common import stage_handler, storage_for, write_timing
from .events import AudioFeaturesEvent


def run(ev: AudioFeaturesEvent, storage) -> dict:
    from sadtalker.stages import audio_features as stage

    job = JobKeys(ev.job_id)
    t0 = time.perf_counter()
    out = stage.audio_features(storage, job, ev.audio_key, ev.job_params())
    write_timing(storage, job, "audio_features", time.perf_counter() - t0, out)
    return dict(out)


@stage_handler("audio_features")
def handler(event: dict) -> dict:
    ev = AudioFeaturesEvent.parse(event)
    return run(ev, storage_for(ev.bucket))

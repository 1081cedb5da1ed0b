"""AudioFeatures: decode the speech, resample to 16 kHz, mel windows per video frame."""

from __future__ import annotations

from sadtalker.jobs import JobKeys

from .common import stage_handler, storage_for
from .events import AudioFeaturesEvent


@stage_handler("audio_features")
def handler(ev: AudioFeaturesEvent) -> dict:
    from sadtalker.stages import audio_features as stage

    return stage.audio_features(storage_for(ev.bucket), JobKeys(ev.job_id), ev.audio_key, ev.job_params())

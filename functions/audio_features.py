"""AudioFeatures: decode the speech, resample to 16 kHz, mel windows per video frame."""

from __future__ import annotations

from sadtalker.jobs import JobKeys

from .common import setting, stage_handler, storage_for
from .contract import MAX_CLIP_SECONDS, MAX_CLIP_SECONDS_ENV
from .events import AudioFeaturesEvent


@stage_handler("audio_features")
def handler(ev: AudioFeaturesEvent) -> dict:
    from sadtalker.stages import audio_features as stage

    params = ev.job_params()
    ceiling = float(setting(MAX_CLIP_SECONDS_ENV) or MAX_CLIP_SECONDS)
    if params.max_audio_seconds > ceiling:  # the operator's ceiling bounds what a job may ask for
        params = params.model_copy(update={"max_audio_seconds": ceiling})
    return stage.audio_features(storage_for(ev.bucket), JobKeys(ev.job_id), ev.audio_key, params)

"""Admission before spending: a job that could not finish within the stack's limits is refused by
PlanChunks before anything is rendered; the operator's clip ceiling bounds every job's max_audio_seconds."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from pipeline_media import EXAMPLES
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job


def long_speech(path, seconds: float):
    with wave.open(str(EXAMPLES / "speech.wav"), "rb") as src:
        params, pcm = src.getparams(), np.frombuffer(src.readframes(src.getnframes()), "<i2")
    n = int(seconds * params.framerate) * params.nchannels
    with wave.open(str(path), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(np.resize(pcm, n).astype("<i2").tobytes())
    return path


def test_a_clip_too_long_for_its_enhancement_ranges_is_refused_before_rendering(reduced_weights, media, template,
                                                                                  tmp_path):
    # One range for the whole clip (the operator's range length far above it) on 1-vCPU tasks: 1500 frames of
    # gfpgan at the slowest-host cost need ~3 hours, past 90 % of the EnhanceRanges state's timeout.
    audio = long_speech(tmp_path / "long.wav", 60.0)
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-too-long", template=template,
                      finalize_vcpus=1, enhance_range_seconds=1e6) as rt:
        desc = rt.wait(rt.start("too-long", media["portrait"], audio, {"enhancer": "gfpgan"}), timeout=900)
        rec = json.loads(rt.get("outputs/too-long/error.json"))
        assert rt.keys("work/too-long/chunks/") == [] and not rt.keys("work/too-long/plan.json")
    assert desc["status"] == "FAILED" and desc["error"] == "ClipTooLong"
    assert rec["state"] == "PlanChunks" and "for its enhancement" in rec["message"] and "at most about" in rec["message"]


def test_the_operators_clip_ceiling_bounds_max_audio_seconds(reduced_weights, media, template):
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-ceiling", template=template,
                      max_clip_seconds=0.3) as rt:
        desc = rt.wait(rt.start("ceiling", media["portrait"], media["short"], {"max_audio_seconds": 300}), timeout=600)
        rec = json.loads(rt.get("outputs/ceiling/error.json"))
    assert desc["status"] == "FAILED" and rec["error"] == "InvalidAudio" and rec["state"] == "AudioFeatures"
    assert "0.3" in rec["message"]

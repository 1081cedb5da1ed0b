"""Capacity: drops beyond what the stack may run wait in the admission queue and then succeed; throttled
render slots are waited out for minutes instead of failing a job whose rendering was already paid for."""

from __future__ import annotations

import hashlib
import json
import time
from unittest import mock

import pytest
from rel_helpers import encode, portrait_image, short_speech

from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine

CLIP_S = 0.2  # 5 frames


def test_twenty_drops_with_room_for_five_all_succeed_each_with_its_own_video(reduced_weights, template):
    portrait, speech = encode(portrait_image(), "PNG"), short_speech(CLIP_S)
    jobs = [f"adm-{i:02d}" for i in range(20)]
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-admission", s3_drop=True, template=template,
                      max_running_jobs=5) as rt:
        s3 = rt.client("s3")
        for i, job in enumerate(jobs):  # all dropped at once
            s3.put_object(Bucket=rt.bucket, Key=f"inbox/{job}/params.json", Body=json.dumps({"seed": i}).encode())
            s3.put_object(Bucket=rt.bucket, Key=f"inbox/{job}/face.png", Body=portrait)
            s3.put_object(Bucket=rt.bucket, Key=f"inbox/{job}/speech.wav", Body=speech)
        deadline = time.monotonic() + 1500
        while time.monotonic() < deadline:
            runs = rt.executions()
            if len(runs) == len(jobs) and all(r["status"] != "RUNNING" for r in runs):
                break
            time.sleep(1.0)
        runs = {r["name"]: r for r in rt.executions()}
        assert set(runs) == set(jobs)
        results = {job: json.loads(rt.get(f"outputs/{job}/result.json")) for job in jobs
                   if runs[job]["status"] == "SUCCEEDED"}
        videos = {job: rt.get(f"outputs/{job}/video.mp4") for job in results}
    assert {j: r["status"] for j, r in runs.items() if r["status"] != "SUCCEEDED"} == {}
    for i, job in enumerate(jobs):
        assert results[job]["job_id"] == job and results[job]["seed"] == i and results[job]["frames"] == 5
        # each job published its own complete video (the hash its result.json recorded)
        assert hashlib.sha256(videos[job]).hexdigest() == results[job]["hashes"]["video_sha256"]
    # never more than five at once
    spans = [(r["startDate"], r["stopDate"]) for r in runs.values()]
    most = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert most <= 5, most


def test_render_chunks_throttled_for_minutes_are_waited_out(reduced_weights, template, tmp_path):
    from moto.core.exceptions import JsonRESTError

    from sadtalker.local.moto_patches import LambdaRoute

    real_call = LambdaRoute.__call__
    state = {"t0": None, "calls": 0, "in_window": 0, "throttled": 0, "after_window": 0}

    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-throttle", template=template) as rt:
        window_s = 300.0  # simulated seconds: five minutes of a busy account

        def call(self, function_name, body, response_headers):
            if function_name.endswith("sadtalker-render-chunk"):
                state["t0"] = state["t0"] or time.monotonic()
                state["calls"] += 1
                simulated = (time.monotonic() - state["t0"]) / rt.retry_time_scale
                if simulated >= window_s:
                    state["after_window"] += 1
                else:
                    state["in_window"] += 1
                    if state["calls"] % 5:  # 4 of every 5 invocations: a 429
                        state["throttled"] += 1
                        raise JsonRESTError("TooManyRequestsException", "Rate exceeded")
            return real_call(self, function_name, body, response_headers)

        with mock.patch.object(LambdaRoute, "__call__", call):
            image, audio = tmp_path / "face.png", tmp_path / "speech.wav"
            image.write_bytes(encode(portrait_image(), "PNG"))
            audio.write_bytes(short_speech(0.6))
            arn = rt.start("throttled-render", image, audio, {"chunk_frames": 2, "seed": 3})
            desc = rt.wait(arn, timeout=900)
        result = json.loads(rt.get("outputs/throttled-render/result.json")) if desc["status"] == "SUCCEEDED" else {}
    assert desc["status"] == "SUCCEEDED", desc
    # throttled for the whole window (80 % of its invocations), and the chunks still waiting when it ended
    assert state["throttled"] >= 0.75 * state["in_window"] and state["throttled"] >= 4, state
    assert state["after_window"] >= 1, state
    assert result["frames"] == round(25 * 0.6)

"""Finalize on Fargate (ecs:runTask.sync -> functions.finalize.main) through the local runtime.

Separate module: every test here needs its own LocalRuntime (other substitutions), and only one moto
world can be active at a time."""

from __future__ import annotations

import json

import pytest

from pipeline_media import wav_seconds
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine


def run(rt, job_id, image, audio, params, timeout=1500):
    arn = rt.start(job_id, image, audio, params)
    return arn, rt.wait(arn, timeout=timeout)


def test_fargate_finalize_path_with_enhancer(reduced_weights, media, tmp_path, template):
    """enhancer set -> Finalize as ecs:runTask.sync (the Fargate entrypoint main(env)), GFPGAN reduced."""
    from sadtalker.video import probe

    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-ecs", template=template) as rt:
        arn, desc = run(rt, "ecs-enh", media["portrait"], media["short"], {"enhancer": "gfpgan", "seed": 7})
        assert desc["status"] == "SUCCEEDED", (desc, rt.keys("outputs/"))
        entered = [e["stateEnteredEventDetails"]["name"] for e in rt.history(arn) if e["type"].endswith("StateEntered")]
        assert "Finalize" in entered and "FinalizeLambda" not in entered
        path = tmp_path / "e.mp4"
        path.write_bytes(rt.get("outputs/ecs-enh/video.mp4"))
        info = probe(path)
        assert info.frames == round(25 * wav_seconds(media["short"]))
        assert (info.width, info.height) == (512, 512)  # 2x enhancer output
        result = json.loads(rt.get("outputs/ecs-enh/result.json"))
        assert result["params"]["enhancer"] == "gfpgan"
        assert result["enhancer"]["precision"] == "fp32" and result["enhancer"]["frames"] == result["frames"]


def test_fargate_task_that_exits_zero_without_output_fails_the_job(reduced_weights, media, template):
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-ecs0", lambda_finalize_max_frames=0,
                      template=template) as rt:
        rt.ecs_tasks["sadtalker-finalize"] = lambda env: 0  # "succeeds" but writes nothing
        arn, desc = run(rt, "ecs-silent", media["portrait"], media["short"], {})
        assert desc["status"] == "FAILED" and desc["error"] == "FinalizeFailed", desc
        rec = json.loads(rt.get("outputs/ecs-silent/error.json"))
        assert rec["state"] == "CheckResult" and "wrote no" in rec["message"]

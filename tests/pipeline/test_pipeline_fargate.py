"""The enhancement fan-out through the local runtime: EnhanceRanges (a Distributed Map of
ecs:runTask.sync tasks running the enhance_range_task contract's entrypoint), then the Finalize Lambda.

Separate module: every test here needs its own LocalRuntime (other substitutions), and only one moto
world can be active at a time."""

from __future__ import annotations

import json
import threading

import pytest

from pipeline_media import wav_seconds
from sadtalker.jobs import JobKeys
from sadtalker.local import LocalRuntime
from sadtalker.local.runtime import TASK_FAMILY

pytestmark = pytest.mark.job  # whole jobs through the local state machine

# 0.6 s = 15 frames in chunks of 5; ranges sized for (almost) no enhancement time: one chunk per range.
ENHANCED = {"enhancer": "gfpgan", "seed": 7, "chunk_frames": 5}


def run(rt, job_id, image, audio, params, timeout=1500):
    arn = rt.start(job_id, image, audio, params)
    return arn, rt.wait(arn, timeout=timeout)


def test_three_range_tasks_one_killed_once_then_one_concatenated_video(reduced_weights, media, tmp_path, template):
    """>= 3 ranges, each its own Fargate task with only JOB_ID/RANGE_START/RANGE_END; the first task of the
    middle range is killed (exit 137) and the state's retry runs it again; Finalize concatenates."""
    from sadtalker.video import probe

    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-ecs", template=template,
                      enhance_range_seconds=0.001) as rt:
        real, calls, lock = rt.ecs_tasks[TASK_FAMILY], [], threading.Lock()

        def task(env):
            with lock:
                calls.append((env["RANGE_START"], env["RANGE_END"]))
                killed = env["RANGE_START"] == "5" and calls.count(("5", "10")) == 1
            return 137 if killed else real(env)

        rt.ecs_tasks[TASK_FAMILY] = task
        arn, desc = run(rt, "ecs-enh", media["portrait"], media["short"], ENHANCED)
        assert desc["status"] == "SUCCEEDED", (desc.get("error"), desc.get("cause"))
        entered = [e["stateEnteredEventDetails"]["name"] for e in rt.history(arn) if e["type"].endswith("StateEntered")]
        assert entered[-5:] == ["ChooseFinalize", "EnhanceRanges", "Finalize", "CheckResult", "Succeeded"]
        ranges = json.loads(rt.get(JobKeys("ecs-enh").range_items))
        assert len(ranges) >= 3 and sorted(set(calls)) == sorted((str(r["start"]), str(r["end"])) for r in ranges)
        assert len(calls) == len(ranges) + 1  # the killed task ran twice
        assert all(rt.exists(JobKeys("ecs-enh").segment(r["start"], r["end"])) for r in ranges)
        path = tmp_path / "e.mp4"
        path.write_bytes(rt.get("outputs/ecs-enh/video.mp4"))
        info = probe(path)
        assert info.frames == round(25 * wav_seconds(media["short"])) == ranges[-1]["end"]
        assert (info.width, info.height) == (512, 512)  # 2x enhancer output
        result = json.loads(rt.get("outputs/ecs-enh/result.json"))
        assert result["params"]["enhancer"] == "gfpgan"


def test_finalize_that_returns_without_output_fails_the_job(reduced_weights, media, template):
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-ecs0", template=template) as rt:
        rt.handlers["sadtalker-finalize"] = lambda event, ctx: {"frames": 0}  # "succeeds" but writes nothing
        arn, desc = run(rt, "fin-silent", media["portrait"], media["short"], {})
        assert desc["status"] == "FAILED" and desc["error"] == "FinalizeFailed", desc
        rec = json.loads(rt.get("outputs/fin-silent/error.json"))
        assert rec["state"] == "CheckResult" and "wrote no" in rec["message"]

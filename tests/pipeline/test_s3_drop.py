"""S3 drop: inbox/<job>/ objects -> S3 EventBridge events -> starter -> admission queue (settle delay) ->
admit_job -> one execution per job, with the folder's params and reference videos, whatever the order."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # jobs started through the S3 drop (their first stage stubbed)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
WAV = b"RIFF" + b"\0" * 200
MP4 = b"\0\0\0\x18ftypisom" + b"\0" * 64


@pytest.fixture
def rt(tmp_path, template):
    runtime = LocalRuntime(tmp_path, workers=0, s3_drop=True, template=template)
    # Executions are not the subject here: stub the state machine's first Lambda so a started job
    # ends quickly (the starter, the queue, the admission and the S3 -> EventBridge path are real).
    started: list[dict] = []

    def validate(event, ctx):
        started.append(event)
        from sadtalker.errors import InvalidImage

        raise InvalidImage("stub: stop after the start")

    runtime.handlers["sadtalker-validate-job"] = validate
    with runtime:
        runtime.started = started
        yield runtime
        for e in runtime.executions():  # let running jobs end before moto is torn down
            runtime.wait(e["executionArn"], timeout=60)


def put(rt, key, body):
    rt.client("s3").put_object(Bucket=rt.bucket, Key=key, Body=body)


def executions_of(rt, job: str, wait_s: float = 0.0) -> list[dict]:
    """The job's executions, after the settle delay and admission have had ``wait_s`` to happen."""
    deadline = time.monotonic() + wait_s
    while True:
        runs = [e for e in rt.executions() if e["name"] == job]
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(0.1)


def settle(rt) -> None:
    """Long enough for every queued admission of the folder to have been tried."""
    time.sleep(rt.settle_seconds + 1.5)


def test_image_alone_starts_nothing_then_audio_starts_one_named_job(rt):
    put(rt, "inbox/drop1/params.json", json.dumps({"still": False, "pose_style": 3}).encode())
    put(rt, "inbox/drop1/face.png", PNG)
    settle(rt)
    assert rt.executions() == []
    put(rt, "inbox/drop1/speech.wav", WAV)
    (ex,) = executions_of(rt, "drop1", wait_s=10)
    desc = rt.wait(ex["executionArn"], timeout=60)
    job_input = json.loads(desc["input"])
    assert job_input == {"image": f"s3://{rt.bucket}/inbox/drop1/face.png",
                         "audio": f"s3://{rt.bucket}/inbox/drop1/speech.wav",
                         "params": {"still": False, "pose_style": 3}}
    # the stubbed failure went through RecordFailure: error.json + our error name
    assert desc["status"] == "FAILED" and desc["error"] == "InvalidImage"
    rec = json.loads(rt.get("outputs/drop1/error.json"))
    assert rec["error"] == "InvalidImage" and rec["state"] == "ValidateJob"
    # inputs are never modified or deleted
    assert rt.get("inbox/drop1/face.png") == PNG


UPLOADS = {"image": ("face.png", PNG), "speech": ("speech.wav", WAV), "params": ("params.json", b'{"seed": 7}'),
           "reference": ("ref_pose.mp4", MP4)}


@pytest.mark.parametrize("order", [("image", "speech", "params", "reference"),  # params (and a video) last
                                   ("reference", "speech", "image", "params"),  # a reference video first
                                   ("params", "speech", "reference", "image")])
def test_any_upload_order_gives_the_same_inputs_and_one_execution(rt, order):
    job = "perm-" + "".join(name[0] for name in order)
    for name in order:
        key, body = UPLOADS[name]
        put(rt, f"inbox/{job}/{key}", body)
        put(rt, f"inbox/{job}/{key}", body)  # a duplicate delivery of every upload
    (ex,) = executions_of(rt, job, wait_s=10)
    settle(rt)
    assert len(executions_of(rt, job)) == 1
    job_input = json.loads(rt.wait(ex["executionArn"], timeout=60)["input"])
    assert job_input == {"image": f"s3://{rt.bucket}/inbox/{job}/face.png",
                         "audio": f"s3://{rt.bucket}/inbox/{job}/speech.wav",
                         "params": {"seed": 7, "ref_pose": f"inbox/{job}/ref_pose.mp4"}}


def test_a_reference_video_is_never_taken_as_the_speech(rt):
    put(rt, "inbox/refonly/ref_eyeblink.mp4", MP4)
    put(rt, "inbox/refonly/face.png", PNG)
    settle(rt)
    assert executions_of(rt, "refonly") == []  # a video named as a reference is not speech
    put(rt, "inbox/refonly/voice.m4a", MP4)
    (ex,) = executions_of(rt, "refonly", wait_s=10)
    job_input = json.loads(rt.wait(ex["executionArn"], timeout=60)["input"])
    assert job_input["audio"].endswith("/voice.m4a")
    assert job_input["params"] == {"ref_eyeblink": "inbox/refonly/ref_eyeblink.mp4"}


def test_a_reused_job_folder_gets_error_json_and_no_second_run(rt):
    put(rt, "inbox/again/face.png", PNG)
    put(rt, "inbox/again/speech.wav", WAV)
    (ex,) = executions_of(rt, "again", wait_s=10)
    rt.wait(ex["executionArn"], timeout=60)
    rt.client("s3").delete_object(Bucket=rt.bucket, Key="outputs/again/error.json")
    time.sleep(1.1)  # S3 event times have whole seconds: an upload in the job's last second reads as a duplicate
    put(rt, "inbox/again/speech.wav", WAV)  # a new upload into the finished job's folder
    deadline = time.monotonic() + 10
    while not rt.keys("outputs/again/error.json") and time.monotonic() < deadline:
        time.sleep(0.1)
    rec = json.loads(rt.get("outputs/again/error.json"))
    assert rec["error"] == "InvalidInput" and "is taken" in rec["message"] and rec["job_id"] == "again"
    assert len(executions_of(rt, "again")) == 1


def test_objects_outside_a_job_folder_are_ignored(rt):
    for key in ("inbox/loose.png", "inbox/a/b/c.wav", "work/x/a.png", "inbox/bad id!/a.wav"):
        ev = {"detail": {"bucket": {"name": rt.bucket}, "object": {"key": key}}}
        assert rt.call("sadtalker-starter", ev)["status"] == "ignored", key
    put(rt, "inbox/loose.wav", WAV)
    settle(rt)
    assert rt.executions() == []


def test_unparseable_params_fail_the_job_with_invalid_params(tmp_path, template):
    with LocalRuntime(tmp_path, workers=0, s3_drop=True, template=template) as rt:
        for key, body in (("params.json", b"{not json"), ("face.png", PNG), ("speech.wav", WAV)):
            put(rt, f"inbox/drop3/{key}", body)
        (ex,) = executions_of(rt, "drop3", wait_s=10)
        desc = rt.wait(ex["executionArn"], timeout=60)
        assert desc["status"] == "FAILED" and desc["error"] == "InvalidParams"
        assert json.loads(rt.get("outputs/drop3/error.json"))["error"] == "InvalidParams"


def test_drops_beyond_the_capacity_wait_in_the_queue(rt):
    """More complete folders than MaxRunningJobs: all start, never more than the maximum at once."""
    seen: list[int] = []
    real = rt.handlers["sadtalker-validate-job"]

    def slow_validate(event, ctx):
        seen.append(sum(e["status"] == "RUNNING" for e in rt.executions()))
        time.sleep(0.5)  # the jobs overlap
        return real(event, ctx)

    rt.handlers["sadtalker-validate-job"] = slow_validate
    jobs = [f"cap-{i}" for i in range(3 * rt.max_running_jobs)]
    for job, (key, body) in itertools.product(jobs, (("face.png", PNG), ("speech.wav", WAV))):
        put(rt, f"inbox/{job}/{key}", body)
    deadline = time.monotonic() + 120
    while len({e["name"] for e in rt.executions()}) < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {e["name"] for e in rt.executions()} == set(jobs)
    assert seen and max(seen) <= rt.max_running_jobs

"""S3 drop: inbox/<job>/ objects -> S3 EventBridge events -> starter Lambda -> one execution per job."""

from __future__ import annotations

import json

import pytest

from sadtalker.local import LocalRuntime

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
WAV = b"RIFF" + b"\0" * 200


@pytest.fixture
def rt(tmp_path):
    runtime = LocalRuntime(tmp_path, workers=0, s3_drop=True)
    # Executions are not the subject here: stub the state machine's first Lambda so a started job
    # ends quickly (the starter itself and the S3 -> EventBridge -> Lambda path are real).
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


def test_image_alone_starts_nothing_then_audio_starts_one_named_job(rt):
    put(rt, "inbox/drop1/params.json", json.dumps({"still": False, "pose_style": 3}).encode())
    put(rt, "inbox/drop1/face.png", PNG)
    assert rt.executions() == []
    put(rt, "inbox/drop1/speech.wav", WAV)
    ex = rt.executions()
    assert [e["name"] for e in ex] == ["drop1"]
    desc = rt.wait(ex[0]["executionArn"], timeout=60)
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


def test_the_same_event_three_times_starts_one_execution(rt):
    put(rt, "inbox/drop2/a.png", PNG)
    put(rt, "inbox/drop2/b.wav", WAV)  # first start (through EventBridge)
    event = {"detail-type": "Object Created", "source": "aws.s3",
             "detail": {"bucket": {"name": rt.bucket}, "object": {"key": "inbox/drop2/b.wav"}}}
    # while the job runs, a re-delivery with the same input is idempotent (the same execution comes back,
    # as on AWS); after it ended, the name is taken: ExecutionAlreadyExists -> "duplicate"
    arns = {rt.call("sadtalker-starter", event).get("execution_arn") for _ in range(3)}
    (ex,) = rt.executions()
    assert arns <= {ex["executionArn"], None}
    rt.wait(ex["executionArn"], timeout=60)
    statuses = [rt.call("sadtalker-starter", event)["status"] for _ in range(3)]
    assert statuses == ["duplicate"] * 3
    put(rt, "inbox/drop2/b.wav", WAV)  # an overwrite re-delivers too
    assert [e["name"] for e in rt.executions()] == ["drop2"]


def test_objects_outside_a_job_folder_are_ignored(rt):
    for key in ("inbox/loose.png", "inbox/a/b/c.wav", "work/x/a.png", "inbox/bad id!/a.wav"):
        ev = {"detail": {"bucket": {"name": rt.bucket}, "object": {"key": key}}}
        assert rt.call("sadtalker-starter", ev)["status"] == "ignored", key
    put(rt, "inbox/loose.wav", WAV)
    assert rt.executions() == []


def test_unparseable_params_fail_the_job_with_invalid_params(tmp_path):
    with LocalRuntime(tmp_path, workers=0, s3_drop=True) as rt:
        put(rt, "inbox/drop3/params.json", b"{not json")
        put(rt, "inbox/drop3/face.png", PNG)
        put(rt, "inbox/drop3/speech.wav", WAV)
        (ex,) = rt.executions()
        desc = rt.wait(ex["executionArn"], timeout=60)
        assert desc["status"] == "FAILED" and desc["error"] == "InvalidParams"
        assert json.loads(rt.get("outputs/drop3/error.json"))["error"] == "InvalidParams"

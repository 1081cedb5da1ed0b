"""`sadtalker submit` / `status`: the AWS client against moto (S3, Step Functions, CloudFormation).

The state machines here are stubs with the real state names (the client only reads names, the
Distributed Map's progress and the execution status); the S3-drop path uses the real starter handler
(functions/starter.py), so the client and the starter are checked to build the same execution input.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from sadtalker import cli
from sadtalker.client import Client, Deployment, JobFailed, find_deployment, new_job_id
from sadtalker.errors import InvalidInput, InvalidParams, NoFaceDetected, TransientError
from sadtalker.jobs import JOB_ID_RE

BUCKET = "sadtalker-client-test"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/stub"

SUCCESS = {"StartAt": "ValidateJob", "States": {
    "ValidateJob": {"Type": "Pass", "Result": {"chunks": [{"start": 0, "end": 25}, {"start": 25, "end": 50},
                                                           {"start": 50, "end": 60}]},
                    "ResultPath": "$.plan", "Next": "RenderChunks"},
    "RenderChunks": {"Type": "Map", "ItemsPath": "$.plan.chunks", "MaxConcurrency": 2,
                     "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                       "StartAt": "RenderChunk",
                                       "States": {"RenderChunk": {"Type": "Pass", "End": True}}},
                     "ResultPath": "$.rendered", "Next": "CheckResult"},
    "CheckResult": {"Type": "Pass", "Result": {"frames": 60}, "Next": "Succeeded"},
    "Succeeded": {"Type": "Succeed"},
}}
FAILURE = {"StartAt": "ValidateJob", "States": {
    "ValidateJob": {"Type": "Pass", "Next": "JobFailed"},
    "JobFailed": {"Type": "Fail", "Error": "NoFaceDetected", "Cause": "no face in the photo"},
}}


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    for k in ("SADTALKER_BUCKET", "SADTALKER_STATE_MACHINE_ARN", "SADTALKER_STACK", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3, boto3.client("stepfunctions", region_name=REGION)


def _machine(sfn, definition, name="sadtalker") -> str:
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


@pytest.fixture
def media(tmp_path) -> tuple[Path, Path]:
    image, audio = tmp_path / "My Face.JPG", tmp_path / "speech.wav"
    image.write_bytes(b"\xff\xd8\xff fake jpeg")
    audio.write_bytes(b"RIFF fake wav")
    return image, audio


def _client(aws, definition) -> Client:
    s3, sfn = aws
    return Client(Deployment(BUCKET, _machine(sfn, definition)), s3=s3, stepfunctions=sfn)


def _put_outputs(s3, job_id: str, synthetic: bool = False) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"outputs/{job_id}/video.mp4", Body=b"MP4DATA")
    s3.put_object(Bucket=BUCKET, Key=f"outputs/{job_id}/result.json",
                  Body=json.dumps({"job_id": job_id, "frames": 60, "weights": {"synthetic": synthetic}}).encode())


def test_new_job_id_is_a_valid_execution_name():
    for name in ("My Face.JPG", "---.png", "a" * 200 + ".jpg", "ü.png"):
        job = new_job_id(name)
        assert JOB_ID_RE.match(job) and len(job) <= 80
    assert new_job_id("x.png") != new_job_id("x.png")


def test_execution_arn_of_a_job():
    d = Deployment("b", "arn:aws:states:eu-west-1:123456789012:stateMachine:Workflow-abc")
    assert d.execution_arn("job-1") == "arn:aws:states:eu-west-1:123456789012:execution:Workflow-abc:job-1"
    with pytest.raises(InvalidInput):
        Deployment("b", "arn:aws:lambda:x").execution_arn("j")


def test_find_deployment_reads_the_stack_outputs(aws):
    # moto's CloudFormation needs extras this project does not install: botocore's Stubber checks the
    # request and serves the documented response shape instead.
    from botocore.stub import Stubber

    cfn = boto3.client("cloudformation", region_name=REGION)
    sm = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"
    outputs = [{"OutputKey": "BucketName", "OutputValue": BUCKET}, {"OutputKey": "StateMachineArn", "OutputValue": sm},
               {"OutputKey": "StartJobCli", "OutputValue": "sadtalker submit ..."}]
    stack = {"StackName": "SadTalker", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [dict(stack, Outputs=outputs)]}, {"StackName": "SadTalker"})
        assert find_deployment("SadTalker", cloudformation=cfn) == Deployment(BUCKET, sm)
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id Nope does not exist")
        with pytest.raises(InvalidInput, match="Nope"):
            find_deployment("Nope", cloudformation=cfn)
        stub.add_response("describe_stacks", {"Stacks": [dict(stack, Outputs=outputs[2:])]}, {"StackName": "Other"})
        with pytest.raises(InvalidInput, match="BucketName, StateMachineArn"):
            find_deployment("Other", cloudformation=cfn)
    # explicit values need no stack at all
    assert find_deployment("Nope", bucket="b", state_machine_arn="arn:x", cloudformation=None) == Deployment("b", "arn:x")


def test_submit_uploads_starts_follows_and_downloads(aws, media, tmp_path):
    s3, sfn = aws
    client = _client(aws, SUCCESS)
    image, audio = media
    job = client.submit(image, audio, params={"still": False, "preprocess": "full"}, job_id="job-1")
    assert job.started_by == "client"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["inbox/job-1/My-Face.jpg", "inbox/job-1/params.json", "inbox/job-1/speech.wav"]
    desc = sfn.describe_execution(executionArn=job.execution_arn)
    assert json.loads(desc["input"]) == {
        "image": f"s3://{BUCKET}/inbox/job-1/My-Face.jpg",
        "audio": f"s3://{BUCKET}/inbox/job-1/speech.wav",
        "params": {"still": False, "preprocess": "full"},
    }
    seen = []
    final = client.wait("job-1", on_progress=seen.append, poll_seconds=0.05)
    assert final.status == "SUCCEEDED" and final.done
    assert (final.chunks_done, final.chunks_total) == (3, 3)
    assert final.state == "Succeeded"
    assert seen and seen[-1].status == "SUCCEEDED"
    client.raise_for_failure(final)  # no exception
    _put_outputs(s3, "job-1")
    out = client.download("job-1", tmp_path / "out" / "video.mp4")
    assert out.read_bytes() == b"MP4DATA"


def test_submit_uploads_references_and_a_video_source_under_drop_names(aws, media, tmp_path):
    s3, sfn = aws
    client = _client(aws, SUCCESS)
    _, audio = media
    clip, pose = tmp_path / "My Clip.MP4", tmp_path / "nod.mov"
    clip.write_bytes(b"video")
    pose.write_bytes(b"pose video")
    job = client.submit(clip, audio, params={"input_yaw": [-10, 10]}, job_id="job-r", ref_pose=pose)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["inbox/job-r/params.json", "inbox/job-r/ref_pose.mov", "inbox/job-r/source.mp4",
                    "inbox/job-r/speech.wav"]
    assert json.loads(sfn.describe_execution(executionArn=job.execution_arn)["input"])["params"] == {
        "input_yaw": [-10, 10], "ref_pose": "inbox/job-r/ref_pose.mov"}
    named = tmp_path / "source.mp4"  # a speech clip that happens to carry the source's drop name
    named.write_bytes(b"speech video")
    assert client.submit(media[0], named, job_id="job-n").audio_key == "inbox/job-n/speech.mp4"
    idle = client.submit(clip, None, params={"length_of_audio": 2.0}, job_id="job-idle")
    assert "audio" not in json.loads(sfn.describe_execution(executionArn=idle.execution_arn)["input"])
    with pytest.raises(InvalidInput, match="length_of_audio"):
        client.submit(clip, None, job_id="job-none")


def test_bad_params_fail_before_any_upload(aws, media):
    s3, _ = aws
    client = _client(aws, SUCCESS)
    with pytest.raises(InvalidParams):
        client.submit(*media, params={"pose_style": 99}, job_id="job-2")
    with pytest.raises(InvalidInput):
        client.submit(*media, job_id="bad id!")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_client_and_s3_drop_starter_build_the_same_execution(aws, media, monkeypatch):
    """The S3-drop admission sees the client's uploads too; whoever starts first, the execution is the same."""
    from functions import admit_job

    s3, sfn = aws
    client = _client(aws, SUCCESS)
    monkeypatch.setenv("SADTALKER_STATE_MACHINE_ARN", client.deployment.state_machine_arn)
    monkeypatch.setenv("SADTALKER_MAX_RUNNING_JOBS", "5")
    image, audio = media
    params = {"expression_scale": 1.5}
    job = client.submit(image, audio, params=params, job_id="job-3", via="drop")
    assert job.started_by == "pending"
    assert client.status("job-3").status == "PENDING"
    out = admit_job.admit({"job_id": "job-3", "bucket": client.deployment.bucket, "event_time": None})
    assert out["status"] == "started"
    # the client's own StartExecution now lands on the same execution: byte-identical input while it runs
    # (StartExecution is idempotent then), or ExecutionAlreadyExists + equal input once it has finished
    arn, _ = client.start("job-3", client.job_input(job.image_key, job.audio_key, params))
    assert arn == job.execution_arn
    assert client.wait("job-3", poll_seconds=0.05).status == "SUCCEEDED"
    assert client.start("job-3", client.job_input(job.image_key, job.audio_key, params)) == (arn, "starter")
    executions = sfn.list_executions(stateMachineArn=client.deployment.state_machine_arn)["executions"]
    assert [e["name"] for e in executions] == ["job-3"]
    # the same job id with other inputs is refused
    with pytest.raises(InvalidInput, match="already exists"):
        client.start("job-3", client.job_input(job.image_key, job.audio_key, {"expression_scale": 2.0}))


def test_drop_mode_that_never_starts_times_out_clearly(aws, media):
    client = _client(aws, SUCCESS)
    client.submit(*media, job_id="job-4", via="drop")
    with pytest.raises(TransientError, match="did not start"):
        client.wait("job-4", poll_seconds=0, start_timeout=0.0, sleep=lambda s: None)


def test_failed_job_raises_its_named_error_from_error_json(aws, media):
    s3, _ = aws
    client = _client(aws, FAILURE)
    client.submit(*media, job_id="job-5")
    final = client.wait("job-5", poll_seconds=0.05)
    assert final.status == "FAILED" and final.error == "NoFaceDetected"
    s3.put_object(Bucket=BUCKET, Key="outputs/job-5/error.json", Body=json.dumps(
        {"error": "NoFaceDetected", "message": "no face was found in the photo", "state": "Preprocess"}).encode())
    with pytest.raises(NoFaceDetected, match="no face was found in the photo"):
        client.raise_for_failure(final)


def test_failed_job_without_error_record_uses_the_execution_error(aws, media):
    definition = {"StartAt": "X", "States": {"X": {"Type": "Fail", "Error": "Weird", "Cause": "odd"}}}
    client = _client(aws, definition)
    client.submit(*media, job_id="job-6")
    final = client.wait("job-6", poll_seconds=0.05)
    with pytest.raises(JobFailed, match="Weird: odd"):
        client.raise_for_failure(final)


def test_cli_submit_and_status(aws, media, tmp_path, capsys):
    s3, sfn = aws
    arn = _machine(sfn, SUCCESS)
    _put_outputs(s3, "job-7", synthetic=True)
    image, audio = media
    out = tmp_path / "result.mp4"
    flags = ["--bucket", BUCKET, "--state-machine", arn, "--poll", "0.05"]
    code = cli.main(["submit", "--image", str(image), "--audio", str(audio), "--job", "job-7",
                     "--params", '{"still": true}', "-o", str(out), *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.read_bytes() == b"MP4DATA"
    assert "SYNTHETIC" in captured.out and "job-7" in captured.out
    assert "SUCCEEDED" in captured.err
    assert cli.main(["status", "job-7", *flags]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out
    assert cli.main(["status", "no-such-job", *flags]) == 0
    assert "PENDING" in capsys.readouterr().out


def test_cli_failed_job_exits_1_with_the_error_name(aws, media, capsys):
    s3, sfn = aws
    arn = _machine(sfn, FAILURE)
    s3.put_object(Bucket=BUCKET, Key="outputs/job-8/error.json",
                  Body=json.dumps({"error": "NoFaceDetected", "message": "no face was found", "state": "Preprocess"}).encode())
    image, audio = media
    code = cli.main(["submit", "--image", str(image), "--audio", str(audio), "--job", "job-8",
                     "--bucket", BUCKET, "--state-machine", arn, "--poll", "0.05"])
    assert code == 1
    assert "NoFaceDetected: no face was found" in capsys.readouterr().err


def test_cli_status_prints_the_stream_link_while_running_and_the_video_link_when_done(aws, media, capsys):
    s3, sfn = aws
    waiting = {"StartAt": "RenderChunks", "States": {"RenderChunks": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = _machine(sfn, waiting, name="sadtalker-running")
    sfn.start_execution(stateMachineArn=arn, name="job-9", input="{}")
    flags = ["--bucket", BUCKET, "--state-machine", arn]
    assert cli.main(["status", "job-9", *flags]) == 0
    out = capsys.readouterr().out
    assert "RUNNING" in out and "stream:" not in out  # no segment finished yet: nothing to play
    s3.put_object(Bucket=BUCKET, Key="outputs/job-9/stream.m3u8", Body=b"#EXTM3U\n")
    assert cli.main(["status", "job-9", "--link-expiry", "900", *flags]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"stream: https://{BUCKET}.s3.amazonaws.com/outputs/job-9/stream.m3u8?")
    assert "X-Amz-Expires=900" in line and "X-Amz-Signature=" in line
    with pytest.raises(InvalidInput, match="link-expiry"):
        Client(Deployment(BUCKET, arn), s3=s3, stepfunctions=sfn).link("job-9", 8 * 24 * 3600)

    done = _machine(sfn, SUCCESS, name="sadtalker-done")
    sfn.start_execution(stateMachineArn=done, name="job-10", input="{}")
    assert Client(Deployment(BUCKET, done), s3=s3, stepfunctions=sfn).wait(
        "job-10", poll_seconds=0.05, timeout=30).status == "SUCCEEDED"
    _put_outputs(s3, "job-10")
    assert cli.main(["status", "job-10", "--bucket", BUCKET, "--state-machine", done]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        f"video: https://{BUCKET}.s3.amazonaws.com/outputs/job-10/video.mp4?")

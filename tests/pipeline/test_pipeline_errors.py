"""Bad StartExecution inputs fail fast in ValidateJob, with our error name and an error.json."""

from __future__ import annotations

import json

import pytest

from pipeline_media import EXAMPLES
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine


@pytest.fixture(scope="module")
def rt(tmp_path_factory, template):
    with LocalRuntime(tmp_path_factory.mktemp("w"), workers=0, template=template) as runtime:
        s3 = runtime.client("s3")
        s3.put_object(Bucket=runtime.bucket, Key="inbox/e/face.png", Body=b"not really a png" * 10)
        s3.put_object(Bucket=runtime.bucket, Key="inbox/e/speech.wav", Body=b"RIFF" + b"\0" * 100)
        s3.put_object(Bucket=runtime.bucket, Key="inbox/e/good.png", Body=(EXAMPLES / "portrait.png").read_bytes())
        yield runtime


@pytest.mark.parametrize("name,job_input,error", [
    ("other-bucket", {"image": "s3://someone-else/x.png", "audio": "inbox/e/speech.wav"}, "InvalidInput"),
    ("no-audio", {"image": "inbox/e/face.png"}, "InvalidParams"),
    ("bad-params", {"image": "inbox/e/face.png", "audio": "inbox/e/speech.wav", "params": {"size": 300}},
     "InvalidParams"),
    ("not-an-image", {"image": "inbox/e/face.png", "audio": "inbox/e/speech.wav"}, "InvalidImage"),
    ("missing-audio", {"image": "inbox/e/good.png", "audio": "inbox/e/none.wav"}, "InvalidAudio"),
])
def test_validate_job_failures(rt, name, job_input, error):
    arn = rt.start_execution(name, job_input)
    desc = rt.wait(arn, timeout=60)
    assert desc["status"] == "FAILED" and desc["error"] == error, desc
    rec = json.loads(rt.get(f"outputs/{name}/error.json"))
    assert rec == {"error": error, "message": desc["cause"], "state": "ValidateJob", "job_id": name}
    entered = [e["stateEnteredEventDetails"]["name"] for e in rt.history(arn) if e["type"].endswith("StateEntered")]
    assert entered == ["ReceiveJob", "ValidateJob", "RecordFailure", "JobFailed"]  # no retry, no compute

"""Notifications: the URL guard, the signature, the body, and webhook delivery against a loopback receiver."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from sadtalker.errors import InvalidParams
from sadtalker.notification import (
    ALLOW_LOOPBACK_ENV,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WebhookRefused,
    check_url,
    encode,
    message_body,
    post_webhook,
    resolve_public,
    sign,
    verify,
)
from sadtalker.params import JobParams

SECRET = b"s3cr3t-key"


@pytest.fixture
def loopback(monkeypatch):
    monkeypatch.setenv(ALLOW_LOOPBACK_ENV, "1")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("ECS_CONTAINER_METADATA_URI_V4", raising=False)


# --- the URL guard --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["https://hooks.example.com/sadtalker?x=1", "https://8.8.8.8:8443/h",
                                 "https://[2606:4700:4700::1111]/h"])
def test_public_https_urls_pass(url):
    assert check_url(url) == url
    assert JobParams.load({"notify_url": url}).notify_url == url


@pytest.mark.parametrize("url,why", [
    ("http://hooks.example.com/h", "https"),
    ("ftp://hooks.example.com/h", "https"),
    ("https://10.1.2.3/h", "10.1.2.3"),
    ("https://192.168.0.10/h", "192.168.0.10"),
    ("https://172.16.5.5/h", "172.16.5.5"),
    ("https://127.0.0.1:8080/h", "127.0.0.1"),
    ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),  # the instance metadata endpoint
    ("https://[::1]/h", "::1"),
    ("https://[fe80::1]/h", "fe80::1"),
    ("https://[fd00::5]/h", "fd00::5"),
    ("https://[::ffff:10.0.0.1]/h", "10.0.0.1"),  # IPv4-mapped IPv6
    ("https://0.0.0.0/h", "0.0.0.0"),
    ("https://localhost/h", "loopback"),
    ("https://user:pw@hooks.example.com/h", "credentials"),
    ("https:///nohost", "no host"),
])
def test_refused_urls_name_the_reason(url, why):
    with pytest.raises(InvalidParams, match=why.replace(".", r"\.").replace("[", r"\[")):
        check_url(url)
    with pytest.raises(InvalidParams, match="notify_url"):
        JobParams.load({"notify_url": url})


def test_loopback_http_only_for_local_tests(monkeypatch, loopback):
    assert check_url("http://127.0.0.1:9000/hook")
    with pytest.raises(InvalidParams, match="https"):
        check_url("http://hooks.example.com/h")  # the allowance is for loopback hosts only
    with pytest.raises(InvalidParams):
        check_url("http://10.0.0.1/h")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sadtalker-notify")  # never inside a deployed function
    with pytest.raises(InvalidParams):
        check_url("http://127.0.0.1:9000/hook")


def _resolver(*answers: str):
    def resolve(host, port, type=0):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers]
    return resolve


def test_dns_answers_must_all_be_public():
    assert resolve_public("hooks.example.com", 443, _resolver("93.184.216.34")) == ["93.184.216.34"]
    for answers in (("10.0.0.7",), ("93.184.216.34", "127.0.0.1"), ("169.254.169.254",), ("::1",)):
        with pytest.raises(WebhookRefused, match="private"):
            resolve_public("rebind.example.com", 443, _resolver(*answers))


def test_unresolvable_host_is_refused():
    def fail(*a, **k):
        raise socket.gaierror("Name or service not known")
    with pytest.raises(WebhookRefused, match="does not resolve"):
        resolve_public("nx.example.invalid", 443, fail)


# --- signature ------------------------------------------------------------------------------------------------
def test_signature_verifies_and_refuses_tampering_staleness_and_other_keys():
    body = b'{"job_id":"a","status":"SUCCEEDED"}'
    now = int(time.time())
    header = sign(SECRET, body, now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert verify(SECRET, header, body)
    assert not verify(SECRET, header, body.replace(b"SUCCEEDED", b"FAILED"))
    assert not verify(b"other", header, body)
    assert not verify(SECRET, sign(SECRET, body, now - 3600), body)  # a replayed old delivery
    assert not verify(SECRET, "garbage", body)


# --- body -------------------------------------------------------------------------------------------------------
DETAIL = {"executionArn": "arn:aws:states:us-east-1:1:execution:sadtalker:j1", "name": "j1",
          "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:sadtalker",
          "startDate": 1_700_000_000_000, "stopDate": 1_700_000_042_500}


def test_body_of_a_success_carries_outcome_timings_cost_and_links():
    result = {"job_id": "j1", "video": "outputs/j1/video.mp4", "preview": "outputs/j1/preview.jpg", "frames": 75,
              "duration_s": 3.0, "timings": {"finalize": {"total_s": 2.0}}, "cost": {"usd": 0.01}, "SYNTHETIC": True}
    links = {"video": "https://b.s3/v?sig", "preview": "https://b.s3/p?sig", "stream": None}
    body = message_body(dict(DETAIL, status="SUCCEEDED"), result, links, "2023-11-14T23:13:20Z")
    assert body["status"] == "SUCCEEDED" and body["job_id"] == "j1" and body["error"] is None
    assert body["duration_s"] == 42.5 and body["started_at"] == "2023-11-14T22:13:20Z"
    assert body["frames"] == 75 and body["timings"] == result["timings"] and body["cost"] == {"usd": 0.01}
    assert body["links"] == {"video": "https://b.s3/v?sig", "preview": "https://b.s3/p?sig"}
    assert body["synthetic_weights"] is True
    assert json.loads(encode(body)) == body


@pytest.mark.parametrize("status,record,name,state", [
    ("FAILED", {"error": "NoFaceDetected", "message": "no face", "state": "Preprocess"}, "NoFaceDetected",
     "Preprocess"),
    ("TIMED_OUT", None, "TIMED_OUT", None),  # no RecordFailure ran: the status names it
    ("ABORTED", None, "ABORTED", None),
])
def test_body_of_a_failure_names_the_error(status, record, name, state):
    body = message_body(dict(DETAIL, status=status), record, {}, None)
    assert body["status"] == status and body["error"]["error"] == name and body["error"]["state"] == state
    assert body["error"]["message"] and body["links"] == {} and body["links_expire_at"] is None
    assert "video" not in body


# --- delivery to a loopback receiver ------------------------------------------------------------------------------
class _Receiver(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((dict(self.headers), body))
        self.send_response(type(self).statuses.pop(0) if type(self).statuses else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(loopback):
    _Receiver.statuses, _Receiver.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    server.shutdown()
    server.server_close()


def test_delivery_is_signed_and_retried_on_5xx(receiver):
    url, rec = receiver
    rec.statuses = [503, 500]
    naps: list[float] = []
    body = b'{"job_id":"j1"}'
    out = post_webhook(url, body, SECRET, "j1/SUCCEEDED", "job.succeeded", sleep=naps.append)
    assert out.delivered and out.status == 200 and out.attempts == 3 and len(naps) == 2
    assert 0 <= naps[0] <= 1.0 and 0 <= naps[1] <= 2.0  # full-jitter backoff under 1 s, 2 s
    for headers, got in rec.seen:
        assert got == body and headers[DELIVERY_HEADER] == "j1/SUCCEEDED"
        assert verify(SECRET, headers[SIGNATURE_HEADER], got)


def test_delivery_gives_up_on_4xx_and_after_its_attempts(receiver):
    url, rec = receiver
    rec.statuses = [404]
    out = post_webhook(url, b"{}", SECRET, "d", "e", sleep=lambda s: None)
    assert not out.delivered and out.attempts == 1 and out.status == 404
    rec.statuses = [500] * 10
    out = post_webhook(url, b"{}", SECRET, "d", "e", attempts=3, sleep=lambda s: None)
    assert not out.delivered and out.attempts == 3 and len(rec.seen) == 4


def test_a_private_dns_answer_sends_nothing(receiver):
    url, rec = receiver
    out = post_webhook("https://hooks.example.com/h", b"{}", SECRET, "d", "e", sleep=lambda s: None,
                       resolve=_resolver("10.0.0.9"))
    assert not out.delivered and out.attempts == 1 and "10.0.0.9" in out.errors[0] and not rec.seen


def test_a_dead_receiver_is_reported_not_raised(loopback):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = post_webhook(f"http://127.0.0.1:{port}/h", b"{}", SECRET, "d", "e", attempts=2, sleep=lambda s: None)
    assert not out.delivered and out.status is None and len(out.errors) == 2


def test_the_readmes_verification_snippet_accepts_our_signature_and_nothing_else():
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Job-end notifications"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert SIGNATURE_HEADER in section and DELIVERY_HEADER in section
    scope: dict = {}
    exec(snippet, scope)  # the documented code, as a receiver would paste it
    check = scope["verify_sadtalker"]
    body = encode(message_body(dict(DETAIL, status="FAILED"), {"error": "InvalidAudio", "message": "m"}, {}, None))
    header = sign(SECRET, body, int(time.time()))
    assert check(SECRET, header, body)
    assert not check(SECRET, header, body + b" ")
    assert not check(b"wrong", header, body)
    assert not check(SECRET, sign(SECRET, body, int(time.time()) - 3600), body)


# --- the notify handler (moto: bucket, topic with an SQS subscriber; no secret exists) -----------------------------
@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="notify-unit")
        topic = boto3.client("sns").create_topic(Name="t")["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                                      Attributes={"RawMessageDelivery": "true"})
        env = {"SADTALKER_BUCKET": "notify-unit", "SADTALKER_NOTIFY_TOPIC_ARN": topic,
               "SADTALKER_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone",
               "SADTALKER_LINK_EXPIRY_S": "600"}
        yield boto3, env, queue


def _invoke(env, event):
    from functions.common import FunctionContext, running_as
    from functions.notify import handler

    with running_as(FunctionContext("notify", env)):
        return handler(event, None)


def _published(boto3, queue) -> list[dict]:
    msgs = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_handler_ignores_what_is_no_job_end(aws):
    boto3, env, queue = aws
    assert _invoke(env, {"detail": dict(DETAIL, status="RUNNING")})["status"] == "ignored"
    assert _invoke(env, {"detail": {"status": "SUCCEEDED"}})["status"] == "ignored"  # no execution name
    assert _published(boto3, queue) == []


def test_handler_publishes_a_timeout_and_survives_an_unreadable_secret(aws):
    from sadtalker.jobs import JobKeys, JobRecord

    boto3, env, queue = aws
    job = JobKeys("j1")
    record = JobRecord("j1", "notify-unit", "inbox/j1/a.png", "inbox/j1/a.wav",
                       JobParams.load({"notify_url": "https://hooks.example.com/h"}), 1)
    boto3.client("s3").put_object(Bucket="notify-unit", Key=job.record, Body=record.to_json())
    out = _invoke(env, {"detail": dict(DETAIL, status="TIMED_OUT", error="States.Timeout", cause=None)})
    # the topic has it; the webhook could not be signed (no secret): reported, never raised
    assert out["status"] == "published" and out["webhook"] == {"delivered": False, "status": None, "attempts": 0}
    (body,) = _published(boto3, queue)
    assert body["status"] == "TIMED_OUT" and body["error"]["error"] == "States.Timeout" and body["links"] == {}

"""Job-end notifications through the local state machine: every end reaches the SNS topic (read back from
an SQS subscription) and, for a validated ``notify_url``, a signed webhook on a loopback receiver.

Executions: one job that succeeds, one that fails in Preprocess (NoFaceDetected, after validation, so its
webhook is sent), one refused at ValidateJob (topic only: its URL was never validated), one aborted while
it runs (no RecordFailure, no error.json: the status event alone tells)."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
import requests

from sadtalker.local import LocalRuntime
from sadtalker.notification import DELIVERY_HEADER, SIGNATURE_HEADER, verify

pytestmark = pytest.mark.job  # whole jobs through the local state machine


class _Receiver(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        type(self).posts.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hook():
    _Receiver.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.posts
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def rt(reduced_weights, template, hook):  # after the receiver: it closes first, the receiver last
    with LocalRuntime(reduced_weights, workers=0, template=template, allow_loopback_webhooks=True) as runtime:
        sqs = runtime.client("sqs")
        queue = sqs.create_queue(QueueName="notifications-subscriber")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        runtime.client("sns").subscribe(TopicArn=runtime.notifications.topic_arn, Protocol="sqs", Endpoint=arn)
        runtime.notification_queue = queue
        yield runtime


def notifications(rt, job_id: str, timeout: float = 30.0) -> list[dict]:
    """The SNS notifications of ``job_id`` that reached the subscribed queue (waits for the first)."""
    sqs, found = rt.client("sqs"), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=rt.notification_queue, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(m["Body"])
            body = json.loads(envelope["Message"])
            rt.seen_notifications = getattr(rt, "seen_notifications", []) + [(envelope, body)]
            sqs.delete_message(QueueUrl=rt.notification_queue, ReceiptHandle=m["ReceiptHandle"])
        found = [(e, b) for e, b in getattr(rt, "seen_notifications", []) if b["job_id"] == job_id]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no notification of {job_id} within {timeout} s")


def posts_of(posts, job_id: str, timeout: float = 30.0) -> list[tuple[dict, bytes]]:
    """The webhook POSTs of ``job_id`` (the topic is published first: waits up to ``timeout`` for one)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [(h, b) for h, b in posts if json.loads(b)["job_id"] == job_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_succeeded_job_notifies_topic_and_webhook_with_links(rt, media, hook):
    url, posts = hook
    desc = rt.wait(rt.start("notify-ok", media["portrait"], media["short"], {"notify_url": url}), timeout=900)
    assert desc["status"] == "SUCCEEDED", desc
    ((envelope, body),) = notifications(rt, "notify-ok")
    result = json.loads(rt.get("outputs/notify-ok/result.json"))
    assert envelope["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert body["status"] == "SUCCEEDED" and body["error"] is None and body["frames"] == result["frames"]
    assert body["timings"] == result["timings"] and body["video"] == "outputs/notify-ok/video.mp4"
    assert body["duration_s"] > 0 and body["links_expire_at"]
    # the links are presigned GETs of the outputs: they fetch the very bytes (moto serves requests' calls)
    for name, key in (("video", "outputs/notify-ok/video.mp4"), ("preview", "outputs/notify-ok/preview.jpg")):
        assert "Signature=" in body["links"][name] and "Expires=" in body["links"][name]
        response = requests.get(body["links"][name], timeout=30)
        assert response.status_code == 200 and response.content == rt.get(key)
    ((headers, raw),) = posts_of(posts, "notify-ok")
    assert json.loads(raw) == body  # the same body, byte-signed
    assert verify(rt.notifications.secret(), headers[SIGNATURE_HEADER], raw)
    assert headers[DELIVERY_HEADER] == "notify-ok/SUCCEEDED"


def test_a_failed_job_notifies_with_its_error(rt, media, hook):
    url, posts = hook
    desc = rt.wait(rt.start("notify-noface", media["gradient"], media["short"], {"notify_url": url}), timeout=600)
    assert desc["status"] == "FAILED" and desc["error"] == "NoFaceDetected"
    ((_, body),) = notifications(rt, "notify-noface")
    assert body["status"] == "FAILED" and body["links"] == {}
    assert body["error"] == {"error": "NoFaceDetected", "message": desc["cause"], "state": "Preprocess"}
    ((headers, raw),) = posts_of(posts, "notify-noface")
    assert json.loads(raw) == body and verify(rt.notifications.secret(), headers[SIGNATURE_HEADER], raw)


def test_a_job_refused_at_validation_notifies_the_topic_only(rt, media, hook):
    url, posts = hook
    private = "https://10.0.0.8/hook"
    desc = rt.wait(rt.start("notify-private", media["portrait"], media["short"], {"notify_url": private}),
                   timeout=120)
    assert desc["status"] == "FAILED" and desc["error"] == "InvalidParams" and "10.0.0.8" in desc["cause"]
    ((_, body),) = notifications(rt, "notify-private")
    assert body["error"]["error"] == "InvalidParams" and body["error"]["state"] == "ValidateJob"
    assert not posts_of(posts, "notify-private", timeout=1.0)


def test_an_aborted_execution_notifies_without_an_error_record(rt, media, hook):
    url, posts = hook
    name = "sadtalker-preprocess"
    real, entered, release = rt.handlers[name], threading.Event(), threading.Event()

    def stuck(event, ctx):
        entered.set()
        release.wait(60)
        return {}  # never used: the execution stops before the next state

    rt.handlers[name] = stuck
    try:
        arn = rt.start("notify-stopped", media["portrait"], media["short"], {"notify_url": url})
        assert entered.wait(60)
        rt.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped by a test")
        release.set()  # moto's interpreter stops between states (AWS at once): let the stuck one return
        desc = rt.wait(arn, timeout=60)
    finally:
        release.set()
        rt.handlers[name] = real
    assert desc["status"] == "ABORTED"
    ((_, body),) = notifications(rt, "notify-stopped")
    assert body["status"] == "ABORTED" and not rt.exists("outputs/notify-stopped/error.json")
    assert body["error"]["error"] in ("Operator", "ABORTED") and body["error"]["message"]
    ((headers, raw),) = posts_of(posts, "notify-stopped")
    assert headers[DELIVERY_HEADER] == "notify-stopped/ABORTED"

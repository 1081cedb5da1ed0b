"""Fault injection through the real state machine (one local runtime, render chunks in worker processes).

Already covered elsewhere and not repeated here: a chunk that fails once with a transient error is retried
and the job's output is identical (tests/pipeline/test_pipeline_example.py::
test_transient_chunk_failure_is_retried_with_identical_output); an enhancement task killed once is
retried and the job succeeds, a Finalize that returns without output fails (tests/pipeline/
test_pipeline_fargate.py).

RenderChunk and the enhancement tasks run in Distributed Map child executions, whose attempts are not
in the job's own history (as on AWS): attempts are counted where the fault is injected.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from rel_helpers import (
    assert_failed_cleanly,
    assert_succeeded,
    encode,
    etags,
    portrait_image,
    short_speech,
    speech_pcm,
    wav_bytes,
)

from sadtalker.errors import TransientError
from sadtalker.local import LocalRuntime
from sadtalker.local.runtime import TASK_FAMILY

pytestmark = pytest.mark.job  # whole jobs through the local state machine

CLIP_S = 0.2  # 5 frames
CHUNK = {"chunk_frames": 2}  # 3 chunks: 0-2, 2-4, 4-5


def start(rt, job_id: str, params: dict | None = None, image: bytes | None = None, audio: bytes | None = None) -> str:
    s3 = rt.client("s3")
    image_key, audio_key = f"inbox/{job_id}/face.png", f"inbox/{job_id}/speech.wav"
    s3.put_object(Bucket=rt.bucket, Key=image_key, Body=image or encode(portrait_image(), "PNG"))
    s3.put_object(Bucket=rt.bucket, Key=audio_key, Body=audio or short_speech(CLIP_S))
    return rt.start_execution(job_id, {"image": f"s3://{rt.bucket}/{image_key}",
                                       "audio": f"s3://{rt.bucket}/{audio_key}", "params": {**CHUNK, **(params or {})}})


def history_of(rt, arn):
    return rt.history(arn)


def task_failures(rt, arn) -> list[tuple[str, str]]:
    """(error, cause) of every failed Task attempt, in order."""
    return [(e["taskFailedEventDetails"].get("error"), e["taskFailedEventDetails"].get("cause", ""))
            for e in rt.history(arn) if e["type"] == "TaskFailed"]


class FailingPuts:
    """A storage wrapper that fails the put of one key (a storage outage between two writes)."""

    def __init__(self, inner, fail_key: str):
        self.inner, self.fail_key = inner, fail_key

    def put(self, key, data):
        if key == self.fail_key:
            raise ConnectionError(f"simulated S3 outage while writing {key}")
        return self.inner.put(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def rt(reduced_weights, template):
    with LocalRuntime(reduced_weights, workers=2, bucket="sadtalker-faults", template=template) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def faults(rt):
    """Start every injected-fault job together (each fault keyed on its job id), wait for all."""
    from moto.core.exceptions import JsonRESTError

    from functions import common
    from sadtalker.local.moto_patches import LambdaRoute

    pool = rt._pool
    real_render = pool.render
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def count(job: str) -> None:
        with lock:
            attempts[job] = attempts.get(job, 0) + 1

    def render(event, objects, ctx):
        job, start_frame = event["job_id"], event["start"]
        if start_frame == 2:
            count(f"render:{job}")
        if job == "f-chunk-crash" and start_frame == 2:
            raise RuntimeError("simulated crash inside the renderer")
        if job == "f-chunk-dies" and start_frame == 2:
            raise TransientError("a render worker process died (out of memory?); the chunk will be retried")
        return real_render(event, objects, ctx)

    pool.render = render

    # Lambda throttling happens in the Lambda service, before any handler runs: a 429 from Invoke.
    throttled = {"f-throttled": 2, "f-throttle-forever": 10**6}
    real_call = LambdaRoute.__call__

    def call(self, function_name, body, response_headers):
        job = (json.loads(body) if body else {}).get("job_id")
        if function_name.endswith("sadtalker-validate-job") and throttled.get(job, 0) > 0:
            throttled[job] -= 1
            raise JsonRESTError("TooManyRequestsException", "Rate exceeded")
        return real_call(self, function_name, body, response_headers)

    # Finalize faults
    real_finalize = rt.handlers["sadtalker-finalize"]

    def finalize(event, ctx):
        if event["job_id"] == "f-final-silent":
            return {"frames": 5}  # "succeeds" without writing anything
        return real_finalize(event, ctx)

    rt.handlers["sadtalker-finalize"] = finalize
    real_factory = common._storage_factory

    def storage(bucket):
        inner = real_factory(bucket)
        return FailingPuts(inner, "outputs/f-final-outage/result.json")

    common.set_storage_factory(storage)

    def task(env):
        count(f"task:{env['JOB_ID']}")
        if env["JOB_ID"] == "f-fargate-exit":
            return 137  # killed (OOM): no output at all
        if env["JOB_ID"] == "f-fargate-killed":  # killed after the video, before result.json
            real_factory(env["SADTALKER_BUCKET"]).put("outputs/f-fargate-killed/video.mp4", b"\0\0\0\x18ftypisom")
            return 137
        raise AssertionError("unexpected Fargate job")

    real_task = rt.ecs_tasks[TASK_FAMILY]
    rt.ecs_tasks[TASK_FAMILY] = task

    # the retrier's (scaled) sleeps, to see the backoff the ASL asks for
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    sleeps: list[float] = []
    scaled_sleep = retrier_decl.time.sleep

    def sleep(seconds):
        sleeps.append(float(seconds))
        scaled_sleep(seconds)

    bad_audio = wav_bytes(speech_pcm(0.02)[0], 16000)  # a valid WAV header, too short: fails in AudioFeatures
    jobs = {
        "f-chunk-crash": {}, "f-chunk-dies": {},
        "f-throttled": {"audio": bad_audio}, "f-throttle-forever": {"audio": bad_audio},
        "f-final-silent": {}, "f-final-outage": {},
        "f-fargate-exit": {"params": {"enhancer": "gfpgan"}}, "f-fargate-killed": {"params": {"enhancer": "gfpgan"}},
    }
    before = {}
    with mock.patch.object(LambdaRoute, "__call__", call), mock.patch.object(retrier_decl.time, "sleep", sleep):
        arns = {}
        for job, kw in jobs.items():
            arns[job] = start(rt, job, **kw)
            before[job] = etags(rt, f"inbox/{job}/")
        with ThreadPoolExecutor(4) as ex:
            descs = dict(zip(arns, ex.map(lambda a: rt.wait(a, timeout=600), arns.values()), strict=True))
    pool.render = real_render
    rt.handlers["sadtalker-finalize"] = real_finalize
    rt.ecs_tasks[TASK_FAMILY] = real_task
    common.set_storage_factory(real_factory)
    return {"arns": arns, "descs": descs, "before": before, "sleeps": sleeps, "attempts": attempts}


def test_a_chunk_that_crashes_fails_the_job_naming_the_chunk(rt, faults):
    desc = faults["descs"]["f-chunk-crash"]
    rec = assert_failed_cleanly(rt, "f-chunk-crash", desc, "RenderFailed", "RenderChunks")
    assert rec["message"].startswith("render chunk 2-4 failed: RuntimeError: simulated crash")
    assert faults["attempts"]["render:f-chunk-crash"] == 1  # not retried


def test_a_chunk_whose_worker_always_dies_is_retried_then_fails_naming_the_chunk(rt, faults):
    desc = faults["descs"]["f-chunk-dies"]
    rec = assert_failed_cleanly(rt, "f-chunk-dies", desc, "TransientError", "RenderChunks")
    assert rec["message"].startswith("render chunk 2-4: a render worker process died")
    assert faults["attempts"]["render:f-chunk-dies"] == 4  # the first try and MaxAttempts (3) retries


def test_throttled_lambda_is_retried_with_backoff_and_the_history_shows_it(rt, faults):
    arn = faults["arns"]["f-throttled"]
    failures = task_failures(rt, arn)
    # two throttled ValidateJob calls, then it ran; the job failed later on its unreadable audio
    assert [e for e, _ in failures] == ["Lambda.TooManyRequestsException"] * 2 + ["InvalidAudio"]
    assert "Rate exceeded" in failures[0][1]
    events = rt.history(arn)
    validate_ok = [e for e in events if e["type"] == "TaskSucceeded"]
    assert validate_ok, "ValidateJob never succeeded after the throttling"
    # the job went on (and failed later on its unreadable audio, as it should)
    rec = assert_failed_cleanly(rt, "f-throttled", faults["descs"]["f-throttled"], "InvalidAudio", "AudioFeatures")
    assert rec["state"] == "AudioFeatures"
    # full-jitter exponential backoff: each wait drawn from [0, 15 s * 2^attempt], at most 300 s (before the
    # local 0.01 scale): a throttled slot frees after minutes
    assert any(s > 0 for s in faults["sleeps"]) and max(faults["sleeps"]) <= 300


def test_a_lambda_that_stays_throttled_fails_the_job_as_transient(rt, faults):
    arn = faults["arns"]["f-throttle-forever"]
    assert [e for e, _ in task_failures(rt, arn)] == ["Lambda.TooManyRequestsException"] * 11  # 1 + 10 retries
    rec = assert_failed_cleanly(rt, "f-throttle-forever", faults["descs"]["f-throttle-forever"], "TransientError",
                                "ValidateJob")
    assert "TooManyRequestsException after its retries" in rec["message"]


def test_finalize_that_writes_nothing_is_not_reported_as_success(rt, faults):
    rec = assert_failed_cleanly(rt, "f-final-silent", faults["descs"]["f-final-silent"], "FinalizeFailed", "CheckResult")
    assert "wrote no" in rec["message"]


def test_finalize_failing_between_video_and_result_leaves_no_video(rt, faults):
    rec = assert_failed_cleanly(rt, "f-final-outage", faults["descs"]["f-final-outage"], "FinalizeFailed", "Finalize")
    assert "ConnectionError" in rec["message"]
    assert not rt.keys("outputs/f-final-outage/video.mp4") and not rt.keys("work/f-final-outage/video.partial.mp4")


def test_enhancement_task_exiting_non_zero_is_retried_then_fails_the_job_naming_the_range(rt, faults):
    rec = assert_failed_cleanly(rt, "f-fargate-exit", faults["descs"]["f-fargate-exit"], "FinalizeFailed",
                                "EnhanceRanges")
    # the Map failed as a whole (ExceedToleratedFailureThreshold); RecordFailure read the failed child
    assert rec["message"].startswith("enhancement range 000000-000005: the enhancement task failed: exit code 137")
    # runTask.sync failed the state (States.TaskFailed) and the state retried it twice
    assert faults["attempts"]["task:f-fargate-exit"] == 3


def test_enhancement_task_killed_after_writing_an_output_leaves_no_video(rt, faults):
    desc = faults["descs"]["f-fargate-killed"]
    assert_failed_cleanly(rt, "f-fargate-killed", desc, "FinalizeFailed", "EnhanceRanges")  # asserts no video.mp4


def test_fault_jobs_never_change_their_inputs(rt, faults):
    for job, before in faults["before"].items():
        assert etags(rt, f"inbox/{job}/") == before, job


def test_render_worker_killed_mid_chunk_is_retried_and_the_job_succeeds(rt, faults):
    """SIGKILL the worker processes while they render a chunk: BrokenProcessPool -> TransientError ->
    Step Functions retries the chunk on a fresh pool -> the job succeeds (and never hangs)."""
    pool = rt._pool
    real_render = pool.render
    killed: list[int] = []

    def render(event, objects, ctx):
        if event["start"] == 2 and not killed:
            def kill_soon():
                # Any moment works: killing a worker breaks the whole pool, so chunk 2-4 (or, if it was
                # already done, the chunk in flight next to it) fails with BrokenProcessPool.
                time.sleep(0.05)
                executor = pool._pool
                for pid in list(getattr(executor, "_processes", {}) or {}):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            threading.Thread(target=kill_soon, daemon=True).start()
        return real_render(event, objects, ctx)

    pool.render = render
    seen = len(rt.route.calls)
    try:
        arn = start(rt, "f-worker-killed")
        desc = rt.wait(arn, timeout=600)
    finally:
        pool.render = real_render
    assert killed, "no worker process was killed"
    assert_succeeded(rt, "f-worker-killed", desc)
    # the chunk attempts (child executions: not in the job's history) as the Lambda route saw them
    failures = [err for name, _, _, err in rt.route.calls[seen:] if name == "sadtalker-render-chunk" and err]
    assert failures and all(e == "TransientError" for e in failures), failures
    assert json.loads(rt.get("outputs/f-worker-killed/result.json"))["frames"] == 5

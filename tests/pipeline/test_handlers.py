"""Handlers without the state machine: event models, failure classification, the success check."""

from __future__ import annotations

import json

import pytest

from sadtalker.errors import FinalizeFailed, InvalidInput
from sadtalker.jobs import JobKeys
from sadtalker.storage import LocalStorage


@pytest.fixture
def local_bucket(tmp_path, monkeypatch):
    from functions import common

    store = LocalStorage(tmp_path)
    monkeypatch.setattr(common, "_storage_factory", lambda bucket: store)
    monkeypatch.setenv("SADTALKER_BUCKET", "b")
    return store


def lambda_cause(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []})


@pytest.mark.parametrize("error,cause,data,expected", [
    ("NoFaceDetected", lambda_cause("NoFaceDetected", "no face in x.png"), {"job": {}},
     ("NoFaceDetected", "Preprocess")),
    ("InvalidAudio", lambda_cause("InvalidAudio", "bad"), {"job": {}}, ("InvalidAudio", "AudioFeatures")),
    ("InvalidInput", lambda_cause("InvalidInput", "bad uri"), {}, ("InvalidInput", "ValidateJob")),
    ("States.TaskFailed", json.dumps({"StoppedReason": "OutOfMemory"}),
     {"job": 1, "prepared": 1, "coeffs": 1, "plan": 1, "rendered": 1}, ("FinalizeFailed", "Finalize")),
    ("Lambda.Unknown", "The function timed out", {"job": 1, "prepared": 1, "coeffs": 1, "plan": 1},
     ("RenderFailed", "RenderChunks")),
    ("States.Timeout", None, {"job": 1, "prepared": 1}, ("TransientError", "Audio2Coeff")),
    ("KeyError", lambda_cause("KeyError", "'coeffs'"), {"job": 1, "prepared": 1, "coeffs": 1, "plan": 1},
     ("RenderFailed", "RenderChunks")),
])
def test_failures_map_to_our_error_names(error, cause, data, expected):
    from functions.record_failure import classify, failed_state

    rec = classify(error, cause, failed_state(data))
    assert (rec.error, rec.state) == expected
    assert rec.message and "\n" not in rec.message
    assert not rec.error.startswith(("States.", "Lambda."))


def test_record_failure_writes_error_json(local_bucket):
    from functions.record_failure import handler

    job = JobKeys("j9")
    for key in (job.stream, job.stream_video, job.stream_audio_segment(0)):  # a stream of a first chunk
        local_bucket.put(key, b"#EXTM3U\n")
    out = handler({"job_id": "j9", "error": {"Error": "NoFaceDetected",
                                             "Cause": lambda_cause("NoFaceDetected", "no face was found")},
                   "data": {"job": {"bucket": "b"}, "error": {}}}, None)
    assert out["error"] == "NoFaceDetected" and out["state"] == "Preprocess"
    rec = json.loads(local_bucket.get(JobKeys("j9").error))
    assert rec == {"error": "NoFaceDetected", "message": "no face was found", "state": "Preprocess", "job_id": "j9"}
    assert not local_bucket.exists(job.stream) and local_bucket.list(job.stream_parts) == []  # no stream outlives it


def test_events_reject_unknown_fields():
    from functions.events import RenderChunkEvent

    with pytest.raises(InvalidInput, match="RenderChunkEvent"):
        RenderChunkEvent.parse({"job_id": "j", "bucket": "b", "start": 0, "end": 5, "surprise": 1})


def test_check_result_fails_a_finalize_that_wrote_nothing(local_bucket):
    from functions.check_result import handler

    with pytest.raises(FinalizeFailed, match="wrote no"):
        handler({"job_id": "j1", "bucket": "b"}, None)
    local_bucket.put(JobKeys("j1").result, b"{not json")
    with pytest.raises(FinalizeFailed, match="not valid JSON"):
        handler({"job_id": "j1", "bucket": "b"}, None)


def test_check_result_accepts_a_written_result(local_bucket):
    from functions.check_result import handler

    job = JobKeys("j2")
    local_bucket.put(job.video, b"mp4")
    local_bucket.put(job.result, json.dumps({"job_id": "j2", "frames": 75, "weights": {"synthetic": True}}).encode())
    out = handler({"job_id": "j2", "bucket": "b"}, None)
    assert out["frames"] == 75 and out["synthetic"] is True and out["video"] == "s3://b/outputs/j2/video.mp4"




def _failed_results(store, job: JobKeys, rows: list[dict]) -> None:
    run = job.map_results + "0f1e2d3c/"
    store.put(run + "manifest.json", b"{}")
    store.put(run + "SUCCEEDED_0.json", json.dumps([{"Input": json.dumps({"start": 0, "end": 25}),
                                                      "Status": "SUCCEEDED", "Output": "{}"}]).encode())
    store.put(run + "FAILED_0.json", json.dumps(rows).encode())


def test_a_failed_distributed_map_is_recorded_as_its_first_failed_child(local_bucket):
    """States.ExceedToleratedFailureThreshold names neither the chunk nor the error: the ResultWriter's
    FAILED file does (the lowest failed chunk wins)."""
    from functions.record_failure import handler

    job = JobKeys("j10")
    _failed_results(local_bucket, job, [
        {"Input": json.dumps({"start": 50, "end": 75}), "Status": "FAILED", "Error": "Lambda.Unknown",
         "Cause": "The function timed out"},
        {"Input": json.dumps({"start": 25, "end": 50}), "Status": "FAILED", "Error": "InvalidChunk",
         "Cause": lambda_cause("InvalidChunk", "coefficients end at frame 40")},
    ])
    map_failed = {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "The specified tolerance threshold ..."}
    data = {"job": {"bucket": "b"}, "prepared": 1, "coeffs": 1, "plan": {"num_ranges": 0}}
    out = handler({"job_id": "j10", "error": map_failed, "data": data}, None)
    assert (out["error"], out["state"]) == ("InvalidChunk", "RenderChunks")
    assert out["message"] == "render chunk 000025-000050: coefficients end at frame 40"

    job = JobKeys("j11")  # a range task killed three times: its exit code, the range named
    _failed_results(local_bucket, job, [{"Input": json.dumps({"job_id": "j11", "start": 0, "end": 75}),
                                         "Status": "FAILED", "Error": "States.TaskFailed",
                                         "Cause": json.dumps({"Containers": [{"ExitCode": 137}],
                                                              "StoppedReason": "OutOfMemoryError"})}])
    data = {**data, "plan": {"num_ranges": 1}, "rendered": {}}
    out = handler({"job_id": "j11", "error": map_failed, "data": data}, None)
    assert (out["error"], out["state"]) == ("FinalizeFailed", "EnhanceRanges")
    assert out["message"] == ("enhancement range 000000-000075: the enhancement task failed: exit code 137 "
                              "(OutOfMemoryError)")


def test_without_failed_results_a_failed_map_keeps_the_state_fallback(local_bucket):
    from functions.record_failure import handler

    out = handler({"job_id": "j12", "error": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "x"},
                   "data": {"job": {"bucket": "b"}, "prepared": 1, "coeffs": 1, "plan": {"num_ranges": 0}}}, None)
    assert (out["error"], out["state"]) == ("RenderFailed", "RenderChunks")

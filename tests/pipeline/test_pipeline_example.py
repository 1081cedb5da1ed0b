"""The whole state machine on the bundled example (examples/portrait.png + speech.wav, 3 s), REDUCED
profile synthetic weights, real handlers and stages, render chunks in worker processes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hls_decode import decode_stream
from pipeline_media import wav_seconds
from sadtalker.errors import TransientError
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine

# Chunks of 25 frames: 3 Map iterations, the retried chunk starts at frame 25 (auto sizing would pick 16).
PARAMS = {"seed": 1234, "chunk_frames": 25}


@pytest.fixture(scope="module")
def rt(reduced_weights, template):
    with LocalRuntime(reduced_weights, workers=2, template=template) as runtime:
        yield runtime


def run(rt, job_id, image, audio, params, timeout=1500):
    arn = rt.start(job_id, image, audio, params)
    return arn, rt.wait(arn, timeout=timeout)


def map_children(rt, job_id) -> list[dict]:
    """The RenderChunks children's rows from the ResultWriter's files, in chunk order."""
    rows = [r for k in rt.keys(f"work/{job_id}/map-results/") if k.rsplit("/", 1)[1].startswith(("SUCCEEDED_", "FAILED_"))
            for r in json.loads(rt.get(k))]
    return sorted(rows, key=lambda r: json.loads(r["Input"])["start"])


def segments(rt, job_id) -> dict[str, bytes]:
    return {k.rsplit("/", 1)[1]: rt.get(k) for k in rt.keys(f"work/{job_id}/segments/")}


@pytest.fixture(scope="module")
def clean_job(rt, media):
    arn, desc = run(rt, "example-clean", media["portrait"], media["speech"], PARAMS)
    return arn, desc


@pytest.fixture(scope="module")
def retried_job(rt, media, clean_job):
    """The same job, but the chunk starting at frame 25 fails once with a transient error."""
    name = "sadtalker-render-chunk"
    real = rt.handlers[name]
    failed: list[dict] = []

    def flaky(event, ctx):
        if event["start"] == 25 and not failed:
            failed.append(event)
            raise TransientError("simulated: the render worker was recycled")
        return real(event, ctx)

    rt.handlers[name] = flaky
    try:
        arn, desc = run(rt, "example-retried", media["portrait"], media["speech"], PARAMS)
    finally:
        rt.handlers[name] = real
    return arn, desc, failed


def test_example_video_h264_aac_frame_count_and_duration(rt, clean_job, media, tmp_path):
    from sadtalker.video import probe

    arn, desc = clean_job
    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    assert out["video"] == f"s3://{rt.bucket}/outputs/example-clean/video.mp4" and out["synthetic"] is True
    seconds = wav_seconds(media["speech"])
    expected = round(25 * seconds)
    path = tmp_path / "v.mp4"
    path.write_bytes(rt.get("outputs/example-clean/video.mp4"))
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.frames == expected == out["frames"]
    assert abs(info.video_duration - seconds) < 0.05
    assert abs(info.audio_duration - seconds) < 0.1


def test_result_json_written_last_and_complete(rt, clean_job):
    result = json.loads(rt.get("outputs/example-clean/result.json"))
    assert result["SYNTHETIC"] is True and result["weights"]["profile"] == "reduced"
    assert result["params"]["seed"] == 1234 and result["frames"] == 75
    for stage in ("validate_job", "preprocess", "audio_features", "audio2coeff", "render_chunks", "finalize"):
        assert stage in result["timings"], stage
    fin = result["timings"]["finalize"]
    parts = fin["setup_s"] + fin["concat_preview_s"] + fin["write_s"]
    assert abs(parts - fin["total_s"]) < 0.01  # the finalize timings add up
    files = result["weights"]["files"]
    assert {"SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar"} <= set(files)
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in files.values())
    video = rt.get("outputs/example-clean/video.mp4")
    assert result["hashes"]["video_sha256"] == hashlib.sha256(video).hexdigest()
    assert rt.get("outputs/example-clean/preview.jpg")[:2] == b"\xff\xd8"
    assert not rt.keys("outputs/example-clean/error.json")
    assert not rt.keys("work/example-clean/video.partial.mp4")
    # inputs untouched
    assert rt.keys("inbox/example-clean/") == ["inbox/example-clean/image.png", "inbox/example-clean/speech.wav"]


def test_history_has_the_map_iterations_and_every_state(rt, clean_job):
    arn, _ = clean_job
    events = rt.history(arn)
    types = [e["type"] for e in events]
    assert types.count("MapRunStarted") == types.count("MapRunSucceeded") == 1  # one Distributed Map run
    assert [json.loads(r["Input"])["start"] for r in map_children(rt, "example-clean")] == [0, 25, 50]  # 75 / 25
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    for state in ("ValidateJob", "PreprocessAndAudioFeatures", "Preprocess", "AudioFeatures", "Audio2Coeff",
                  "PlanChunks", "RenderChunks", "ChooseFinalize", "Finalize", "CheckResult", "Succeeded"):
        assert state in entered, state
    assert "EnhanceRanges" not in entered and "RecordFailure" not in entered
    # payloads stay small: keys and metadata only
    assert max(len(json.dumps(e, default=str)) for e in events) < 16_000


def test_transient_chunk_failure_is_retried_with_identical_output(rt, clean_job, retried_job):
    arn, desc, failed = retried_job
    assert desc["status"] == "SUCCEEDED", desc
    assert len(failed) == 1  # the retry happened inside the chunk's child execution
    assert [r["Status"] for r in map_children(rt, "example-retried")] == ["SUCCEEDED"] * 3
    a, b = segments(rt, "example-clean"), segments(rt, "example-retried")
    assert sorted(a) == sorted(b) == ["000000-000025.ts", "000025-000050.ts", "000050-000075.ts"]
    assert a == b  # the retried chunk's segment is byte-identical
    ra = json.loads(rt.get("outputs/example-clean/result.json"))
    rb = json.loads(rt.get("outputs/example-retried/result.json"))
    assert ra["hashes"]["video_sha256"] == rb["hashes"]["video_sha256"]


def test_no_face_ends_in_fail_with_named_error_and_error_json(rt, media):
    arn, desc = run(rt, "no-face", media["gradient"], media["short"], {})
    assert desc["status"] == "FAILED"
    assert desc["error"] == "NoFaceDetected" and desc["cause"]
    rec = json.loads(rt.get("outputs/no-face/error.json"))
    assert rec["error"] == "NoFaceDetected" and rec["state"] == "Preprocess" and rec["job_id"] == "no-face"
    assert rec["message"] == desc["cause"]
    assert not rt.keys("outputs/no-face/video.mp4") and not rt.keys("outputs/no-face/result.json")
    assert not rt.keys("outputs/no-face/stream")  # AudioFeatures' stream audio removed by RecordFailure
    names = [e["stateEnteredEventDetails"]["name"] for e in rt.history(arn) if e["type"].endswith("StateEntered")]
    assert names[-2:] == ["RecordFailure", "JobFailed"]


def test_stream_lists_the_finished_prefix_and_is_closed_by_finalize(rt, clean_job, tmp_path):
    """The job's own (closed, presigned) stream names exactly the plan's segments; the same objects, with
    only the first k of n segments written, publish a playlist that decodes to exactly those k segments'
    frames, with audio."""
    from urllib.parse import urlparse

    from sadtalker import hls
    from sadtalker.jobs import JobKeys
    from sadtalker.stages.plan_chunks import ChunkPlan
    from sadtalker.storage import LocalStorage
    from sadtalker.video import decode_frames

    assert clean_job[1]["status"] == "SUCCEEDED"
    job = JobKeys("example-clean")
    store = LocalStorage(tmp_path / "bucket")
    audio = [job.stream_audio_index, *(k for k in rt.keys(job.stream_audio_parts) if k.endswith(".ts"))]
    for key in (job.plan, *audio, *rt.keys(job.segments)):  # the objects a publisher reads, no playlist yet
        store.put(key, rt.get(key))
    plan = ChunkPlan.read(store, job)
    keys = [job.segment(s["start"], s["end"]) for s in plan.segments]
    assert len(keys) == 3

    def named(playlist: str) -> list[str]:  # presigned links -> keys
        lines = rt.get(playlist).decode().splitlines()
        assert lines[-1] == "#EXT-X-ENDLIST"
        urls = [ln for ln in lines if ln and not ln.startswith("#")]
        assert all("X-Amz-Signature=" in u for u in urls)
        return [urlparse(u).path.split("/", 2)[2] if urlparse(u).path.startswith(f"/{rt.bucket}/")
                else urlparse(u).path.lstrip("/") for u in urls]

    assert named(job.stream_video) == keys
    assert named(job.stream_audio) == [p.key for p in hls.read_audio_index(store, job)]

    segment_frames = []
    for key in keys:
        path = tmp_path / key.rsplit("/", 1)[1]
        path.write_bytes(rt.get(key))
        segment_frames.append(decode_frames(path))
    for k in (1, 3):
        for key in keys[k:]:
            store.delete(key)
        published = hls.publish_stream(store, job) if k < 3 else hls.close_stream(store, job)
        assert published == k
        frames, audio_s = decode_stream(store.root / job.stream, k < 3, *segment_frames[0].shape[1:3])
        expected = np.concatenate(segment_frames[:k])
        assert frames.shape == expected.shape and np.array_equal(frames, expected)
        assert audio_s >= plan.segments[k - 1]["end"] / 25
        for key in keys[k:]:
            store.put(key, rt.get(key))

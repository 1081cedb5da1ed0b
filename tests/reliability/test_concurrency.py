"""Concurrent jobs on one local runtime (render chunks in worker processes): separate, correct outputs,
no cross-talk through temp files or caches; a job id that exists is refused with a clear message."""

from __future__ import annotations

import io
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from rel_helpers import assert_succeeded, encode, ffmpeg, portrait_image, short_speech

from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine

CLIP_S = 0.2


def put_inputs(rt, job_id: str, image: bytes, audio: bytes) -> dict:
    s3 = rt.client("s3")
    s3.put_object(Bucket=rt.bucket, Key=f"inbox/{job_id}/face.png", Body=image)
    s3.put_object(Bucket=rt.bucket, Key=f"inbox/{job_id}/speech.wav", Body=audio)
    return {"image": f"s3://{rt.bucket}/inbox/{job_id}/face.png", "audio": f"s3://{rt.bucket}/inbox/{job_id}/speech.wav"}


def npz(rt, key: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(rt.get(key))) as z:
        return {k: z[k] for k in z.files}


def segments(rt, job_id: str) -> list[bytes]:
    """The job's H.264 segments in frame order (RenderChunk's output without an enhancer)."""
    return [rt.get(k) for k in rt.keys(f"work/{job_id}/segments/")]


def frames(rt, job_id: str) -> np.ndarray:
    """The decoded frames of the job's segments, in order."""
    from sadtalker.video import decode_frames

    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for i, data in enumerate(segments(rt, job_id)):
            path = Path(tmp) / f"{i}.ts"
            path.write_bytes(data)
            out.append(decode_frames(path))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def rt(reduced_weights, template):
    with LocalRuntime(reduced_weights, workers=2, bucket="sadtalker-concurrency", template=template) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def jobs(rt):
    """A alone first; then A2 (= A's inputs and seed under another id), B (full mode: other models, the
    paste-back path) and C (other speech at 48 kHz stereo, head motion) all started together."""
    portrait = encode(portrait_image(), "PNG")
    mirrored = encode(portrait_image().transpose(0), "PNG")  # FLIP_LEFT_RIGHT: another face position
    speech = short_speech(CLIP_S)
    other_speech = ffmpeg(["-ar", "48000", "-ac", "2", "-af", "atempo=0.8", "-c:a", "pcm_s16le"], "o.wav",
                          short_speech(CLIP_S * 0.8 + 0.05))
    specs = {
        "k-a": (portrait, speech, {"seed": 7, "chunk_frames": 2}),
        "k-a2": (portrait, speech, {"seed": 7, "chunk_frames": 2}),
        "k-b": (mirrored, speech, {"seed": 7, "chunk_frames": 2, "preprocess": "full"}),
        "k-c": (portrait, other_speech, {"seed": 9, "chunk_frames": 3, "still": False, "pose_style": 5}),
    }
    inputs = {j: {**put_inputs(rt, j, img, aud), "params": p} for j, (img, aud, p) in specs.items()}
    descs = {"k-a": rt.wait(rt.start_execution("k-a", inputs["k-a"]), timeout=600)}
    arns = {j: rt.start_execution(j, inputs[j]) for j in ("k-a2", "k-b", "k-c")}  # together
    with ThreadPoolExecutor(3) as ex:
        descs.update(zip(arns, ex.map(lambda a: rt.wait(a, timeout=600), arns.values()), strict=True))
    return {"descs": descs, "inputs": inputs}


def test_all_jobs_succeed_with_their_own_results(rt, jobs):
    for job, desc in jobs["descs"].items():
        result = assert_succeeded(rt, job, desc)
        assert result["video"] == f"outputs/{job}/video.mp4"
        assert json.loads(desc["output"])["video"] == f"s3://{rt.bucket}/outputs/{job}/video.mp4"
        params = jobs["inputs"][job]["params"]
        assert result["params"]["seed"] == params["seed"] and result["params"]["preprocess"] == params.get(
            "preprocess", "crop")


def test_the_same_inputs_run_concurrently_give_bit_identical_frames(rt, jobs):
    assert segments(rt, "k-a") == segments(rt, "k-a2")  # the encoded segments, byte for byte
    np.testing.assert_array_equal(frames(rt, "k-a"), frames(rt, "k-a2"))
    np.testing.assert_array_equal(npz(rt, "work/k-a/coeffs.npz")["coeffs"], npz(rt, "work/k-a2/coeffs.npz")["coeffs"])
    ra, ra2 = (json.loads(rt.get(f"outputs/{j}/result.json")) for j in ("k-a", "k-a2"))
    assert ra["hashes"]["video_sha256"] == ra2["hashes"]["video_sha256"]


def test_other_inputs_give_other_outputs_no_cross_talk(rt, jobs):
    a, b, c = (frames(rt, j) for j in ("k-a", "k-b", "k-c"))
    assert not np.array_equal(a, b[: len(a)]) and not np.array_equal(a[: len(c)], c[: len(a)])
    # B's photo is mirrored: its face crop is the mirror image of A's (within resampling differences)
    sa, sb = (np.asarray(__import__("PIL.Image").Image.open(io.BytesIO(rt.get(f"work/{j}/source.png"))), int)
              for j in ("k-a", "k-b"))
    assert np.abs(sa[:, ::-1] - sb).mean() < 12
    # C's coefficients are its own (other speech, other seed): the audio2coeff cache is per job
    ca, cc = (npz(rt, f"work/{j}/coeffs.npz") for j in ("k-a", "k-c"))
    assert str(ca["input_hash"]) != str(cc["input_hash"]) and int(cc["seed"]) == 9
    # full mode pastes back into the 512 x 512 photo; crop mode keeps the face size
    rb = json.loads(rt.get("outputs/k-b/result.json"))["video_info"]
    ra = json.loads(rt.get("outputs/k-a/result.json"))["video_info"]
    assert (rb.get("width"), rb.get("height")) == (512, 512) and ra.get("width") == 256


def test_each_job_wrote_only_under_its_own_prefixes(rt, jobs):
    for key in rt.keys(""):
        parts = key.split("/")
        assert parts[0] in ("inbox", "work", "outputs") and parts[1] in jobs["descs"], key
    for job in jobs["descs"]:
        for key in rt.keys(f"work/{job}/timings/"):
            assert json.loads(rt.get(key))["stage"], key


def test_an_existing_job_id_is_refused_with_a_clear_message(rt, jobs):
    from sadtalker.client import Client, Deployment
    from sadtalker.errors import InvalidInput

    sfn = rt.client("stepfunctions")
    other_input = dict(jobs["inputs"]["k-a"], params={"seed": 8})
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists) as info:
        rt.start_execution("k-a", other_input)
    assert "already exists" in str(info.value).lower() or "ExecutionAlreadyExists" in str(info.value)

    client = Client(Deployment(rt.bucket, rt.deployment.state_machine_arn), s3=rt.client("s3"), stepfunctions=sfn)
    with pytest.raises(InvalidInput, match="already exists with other inputs.*choose another"):
        client.start("k-a", other_input)
    # the same input again is the same job (what a re-delivered S3 event or a retried submit does)
    arn, who = client.start("k-a", jobs["inputs"]["k-a"])
    assert arn.endswith(":k-a") and who == "starter"

    # a re-delivered S3 event of the job's folder: queued, then admitted as a duplicate
    out = rt.call("sadtalker-starter", {"detail": {"bucket": {"name": rt.bucket}, "object": {"key": "inbox/k-a/speech.wav"}}})
    assert out["status"] == "queued"
    replies: list[dict] = []
    for _ in range(100):
        replies += rt.admit_queued()
        if replies:
            break
        time.sleep(0.1)
    assert [r["status"] for r in replies] == ["duplicate"]
    assert [e["name"] for e in rt.executions()].count("k-a") == 1

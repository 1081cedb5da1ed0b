from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sadtalker.errors import InvalidAudio, InvalidImage, InvalidInput, InvalidParams
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.validate_job import MAX_IMAGE_BYTES, parse_job_input, validate_job
from sadtalker.storage import LocalStorage

EXAMPLES = Path(__file__).parents[2] / "examples"
BUCKET = "ours"


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    s = LocalStorage(tmp_path)
    s.put("inbox/j1/face.png", (EXAMPLES / "portrait.png").read_bytes())
    s.put("inbox/j1/speech.wav", (EXAMPLES / "speech.wav").read_bytes())
    return s


def test_good_job_passes_and_reports_header_facts(store):
    info = validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", JobParams())
    with Image.open(EXAMPLES / "portrait.png") as im:
        assert (info["image"]["width"], info["image"]["height"]) == im.size
    assert info["image"]["format"] == "PNG"
    assert info["audio"]["extension"] == ".wav"
    assert info["seed"] == JobParams().effective_seed("j1")


def test_parse_input_accepts_our_bucket_uris_and_params():
    img, aud, params = parse_job_input(
        {"image": f"s3://{BUCKET}/inbox/a/x.png", "audio": "inbox/a/y.wav", "params": {"still": False}}, BUCKET)
    assert (img, aud, params.still) == ("inbox/a/x.png", "inbox/a/y.wav", False)


@pytest.mark.parametrize("data,match", [
    ({"image": "s3://other/inbox/a/x.png", "audio": "inbox/a/y.wav"}, "only reads its own bucket"),
    ({"image": "https://example.com/x.png", "audio": "inbox/a/y.wav"}, "s3:// URI"),
    ({"image": "inbox/../secret.png", "audio": "inbox/a/y.wav"}, "'..'"),
    ({"image": "/etc/passwd.png", "audio": "inbox/a/y.wav"}, "safe object key"),
    ({"image": "outputs/j/video.png", "audio": "inbox/a/y.wav"}, "not under inbox/"),
    ({"image": "uploads/x.png", "audio": "inbox/a/y.wav"}, "not under inbox/"),
    ({"image": "inbox/a/x.png", "audio": "inbox/a/y.wav", "extra": 1}, "unknown field"),
    (["not", "an", "object"], "JSON object"),
])
def test_bad_start_input_is_invalid_input(data, match):
    with pytest.raises(InvalidInput, match=match):
        parse_job_input(data, BUCKET)


@pytest.mark.parametrize("data,missing", [({"audio": "inbox/a/y.wav"}, "image"), ({"image": "inbox/a/x.png"}, "audio")])
def test_missing_image_or_audio_is_invalid_params(data, missing):
    with pytest.raises(InvalidParams, match=f"needs '{missing}'"):
        parse_job_input(data, BUCKET)


def test_bad_params_are_invalid_params():
    with pytest.raises(InvalidParams, match="pose_style"):
        parse_job_input({"image": "inbox/a/x.png", "audio": "inbox/a/y.wav", "params": {"pose_style": 99}}, BUCKET)
    with pytest.raises(InvalidParams):
        parse_job_input({"image": "inbox/a/x.png", "audio": "inbox/a/y.wav", "params": "{not json"}, BUCKET)


def test_missing_objects(store):
    with pytest.raises(InvalidImage, match="does not exist"):
        validate_job(store, JobKeys("j1"), "inbox/j1/none.png", "inbox/j1/speech.wav", JobParams())
    with pytest.raises(InvalidAudio, match="does not exist"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/none.wav", JobParams())


def test_image_checks_read_the_header_only(store):
    store.put("inbox/j1/tiny.png", png(32, 400))
    with pytest.raises(InvalidImage, match="32x400"):
        validate_job(store, JobKeys("j1"), "inbox/j1/tiny.png", "inbox/j1/speech.wav", JobParams())
    store.put("inbox/j1/garbage.png", b"\x89PNG but not really" * 10)
    with pytest.raises(InvalidImage, match="cannot|can be read"):
        validate_job(store, JobKeys("j1"), "inbox/j1/garbage.png", "inbox/j1/speech.wav", JobParams())
    store.put("inbox/j1/big.png", b"\0" * (MAX_IMAGE_BYTES + 1))
    with pytest.raises(InvalidImage, match="MB"):
        validate_job(store, JobKeys("j1"), "inbox/j1/big.png", "inbox/j1/speech.wav", JobParams())
    store.put("inbox/j1/face.tiff", png(100, 100))
    with pytest.raises(InvalidImage, match="must end in"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.tiff", "inbox/j1/speech.wav", JobParams())


def test_audio_checks(store):
    store.put("inbox/j1/speech.txt", b"x" * 1000)
    with pytest.raises(InvalidAudio, match="extension"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.txt", JobParams())
    store.put("inbox/j1/short.wav", b"RIFF")
    with pytest.raises(InvalidAudio, match="too short"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/short.wav", JobParams())


def test_reference_videos_must_exist(store):
    params = JobParams(ref_pose="inbox/j1/pose.mp4")
    with pytest.raises(InvalidParams, match="does not exist"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", params)
    store.put("inbox/j1/pose.mp4", b"\0" * 100)
    with pytest.raises(InvalidParams, match="ref_pose.*not an MP4"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", params)
    store.put("inbox/j1/pose.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 100)
    validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", params)
    assert json.loads(JobParams(ref_pose="inbox/j1/pose.mp4").to_json())["ref_pose"] == "inbox/j1/pose.mp4"


def test_the_wav_header_gives_the_quote_the_decoded_length(store):
    from functions.quote import deployed_stack
    from sadtalker.audio.decode import decode_audio
    from sadtalker.audio.features import frame_count
    from sadtalker.pricing import frames_of, quote_before_decoding

    info = validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", JobParams())
    decoded = frame_count(len(decode_audio(EXAMPLES / "speech.wav", 300)))
    assert frames_of(info["audio"]["seconds"]) == decoded  # what AudioFeatures will count
    q = quote_before_decoding(JobParams(), info["audio"], deployed_stack(10))
    assert q is not None and q.frames == decoded and q.total_usd > 0

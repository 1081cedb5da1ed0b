"""More inputs and controls (issue 16, item 5): idle mode, use_blink, face_index, video/GIF sources,
reference videos from the CLI. Whole jobs through the state machine: tests/reliability/test_bad_inputs.py
and tests/pipeline/test_inputs_jobs.py."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sadtalker.cli import build_parser, param_overrides
from sadtalker.drop import read_folder, video_key
from sadtalker.errors import InvalidImage, InvalidParams
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.audio_features import audio_features, idle_features
from sadtalker.stages.validate_job import parse_job_input, validate_job
from sadtalker.storage import LocalStorage

EXAMPLES = Path(__file__).parents[2] / "examples"
BUCKET = "ours"


# --- params -------------------------------------------------------------------------------------------
def test_new_params_defaults_and_limits():
    p = JobParams()
    assert (p.use_blink, p.length_of_audio, p.face_index, p.idle) == (True, None, None, False)
    assert JobParams.load({"length_of_audio": 2.5}).idle
    for bad, field in (({"length_of_audio": 0.01}, "length_of_audio"), ({"face_index": -1}, "face_index"),
                       ({"use_blink": "no"}, "use_blink"),
                       ({"length_of_audio": 20.0, "max_audio_seconds": 10.0}, "length_of_audio")):
        with pytest.raises(InvalidParams, match=field):
            JobParams.load(bad)


# --- ValidateJob ----------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = LocalStorage(tmp_path)
    s.put("inbox/j1/face.png", (EXAMPLES / "portrait.png").read_bytes())
    s.put("inbox/j1/speech.wav", (EXAMPLES / "speech.wav").read_bytes())
    return s


def test_idle_job_input_needs_no_speech():
    image, audio, params = parse_job_input(
        {"image": f"s3://{BUCKET}/inbox/j1/face.png", "params": {"length_of_audio": 1.0}}, BUCKET)
    assert (image, audio, params.length_of_audio) == ("inbox/j1/face.png", "", 1.0)
    with pytest.raises(InvalidParams, match="length_of_audio"):
        parse_job_input({"image": f"s3://{BUCKET}/inbox/j1/face.png"}, BUCKET)


def test_idle_job_validates_without_speech_and_refuses_both(store):
    idle = JobParams.load({"length_of_audio": 1.0})
    info = validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "", idle)
    assert info["audio"] == {"idle_seconds": 1.0}
    with pytest.raises(InvalidParams, match="leave out one"):
        validate_job(store, JobKeys("j1"), "inbox/j1/face.png", "inbox/j1/speech.wav", idle)


def gif(frames: int = 2) -> bytes:
    im = Image.open(EXAMPLES / "portrait.png").convert("RGB").resize((128, 128))
    buf = io.BytesIO()
    im.save(buf, format="GIF", save_all=True, append_images=[im.rotate(10)] * (frames - 1), duration=100, loop=0)
    return buf.getvalue()


def test_gif_and_video_sources_pass_validation_by_their_bytes(store):
    store.put("inbox/j1/face.gif", gif())
    assert validate_job(store, JobKeys("j1"), "inbox/j1/face.gif", "inbox/j1/speech.wav", JobParams())["image"][
        "format"] == "GIF"
    store.put("inbox/j1/source.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\0" * 64)
    info = validate_job(store, JobKeys("j1"), "inbox/j1/source.mp4", "inbox/j1/speech.wav", JobParams())
    assert info["image"]["format"] == "video" and info["image"]["container"] == "mov"
    store.put("inbox/j1/source.webm", (EXAMPLES / "portrait.png").read_bytes())  # a photo named .webm
    with pytest.raises(InvalidImage, match="not an MP4/MOV"):
        validate_job(store, JobKeys("j1"), "inbox/j1/source.webm", "inbox/j1/speech.wav", JobParams())


# --- AudioFeatures in idle mode ---------------------------------------------------------------------------
def test_idle_features_are_silence_and_zero_windows(tmp_path):
    store = LocalStorage(tmp_path)
    out = audio_features(store, JobKeys("j1"), "", JobParams.load({"length_of_audio": 1.3}))
    assert (out["num_frames"], out["seconds"]) == (32, 1.28)  # int(1.3 * 25), as the official idle mode
    arrays = store.get_npz(JobKeys("j1").audio)
    assert arrays["indiv_mels"].shape == (32, 80, 16) and not arrays["indiv_mels"].any()
    assert arrays["wav"].shape == (32 * 640,) and not arrays["wav"].any()
    with pytest.raises(InvalidParams, match="length_of_audio"):  # the operator's ceiling is lower
        idle_features(30.0, 10.0)


# --- the S3-drop folder ---------------------------------------------------------------------------------
def test_drop_folder_takes_a_named_video_as_the_source():
    job = JobKeys("d1")
    keys = [f"inbox/d1/{n}" for n in ("Source.MP4", "speech.mp4", "ref_pose.mov", "face.png")]
    folder = read_folder(keys, job)
    assert (folder.image, folder.audio) == ("inbox/d1/Source.MP4", "inbox/d1/speech.mp4")
    assert folder.references == {"ref_pose": "inbox/d1/ref_pose.mov"}
    assert read_folder(["inbox/d1/a.gif", "inbox/d1/b.wav"], job).image == "inbox/d1/a.gif"
    assert read_folder(["inbox/d1/clip.mp4", "inbox/d1/b.wav"], job).image is None  # an unnamed video is not a face
    assert video_key(job, "source", Path("x/My Clip.MOV")) == "inbox/d1/source.mov"


# --- CLI flags ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["generate", "submit"])
def test_job_flags_become_params(command):
    args = build_parser().parse_args([
        command, "--image", "f.png", "--input-yaw", "-20", "30", "--input-pitch", "5", "--input-roll", "0", "10",
        "--no-blink", "--length-of-audio", "2", "--face-index", "1", "--ref-pose", "p.mp4", "--ref-eyeblink", "e.mp4"])
    over = {k: v for k, v in param_overrides(args).items() if v is not None}
    assert over == {"input_yaw": [-20, 30], "input_pitch": [5], "input_roll": [0, 10], "use_blink": False,
                    "length_of_audio": 2.0, "face_index": 1}
    assert JobParams.load(over).input_yaw == [-20, 30]
    assert (args.ref_pose, args.ref_eyeblink, args.audio) == ("p.mp4", "e.mp4", None)


def test_generate_usage_errors_for_missing_speech_and_references(tmp_path, capsys):
    from sadtalker.cli import main

    face = tmp_path / "f.png"
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(face)
    for argv, message in (([], "--length-of-audio"), (["--audio", str(face), "--ref-pose", "none.mp4"], "--ref-pose")):
        rc = main(["generate", "--image", str(face), *argv, "-o", str(tmp_path / "o.mp4"), "--weights", "synthetic"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err
    assert not (tmp_path / "o.mp4").exists()


# --- preview-crop ---------------------------------------------------------------------------------------
def test_preview_crop_draws_numbered_faces_and_the_crop(tmp_path, capsys):
    from reference_data import reference_dir
    from sadtalker.cli import main

    astronaut = Image.open(reference_dir("sadtalker") / "astronaut.png").convert("RGB")
    canvas = Image.new("RGB", (900, 600), (128, 128, 128))
    canvas.paste(astronaut.resize((256, 256)), (20, 300))  # face 0: left, smaller
    canvas.paste(astronaut, (380, 0))  # face 1: right, larger (the default choice)
    canvas.save(tmp_path / "group.png")
    out = tmp_path / "preview.png"
    rc = main(["preview-crop", "--image", str(tmp_path / "group.png"), "-o", str(out), "--landmarks", "dlib",
               "--face-index", "0"])
    text = capsys.readouterr().out
    assert rc == 0, text
    rows = [line for line in text.splitlines() if line.strip().startswith("face_index")]
    assert len(rows) >= 2 and f"{len(rows)} face(s)" in text  # dlib also finds a weak face on the suit patch
    lefts = [int(line.split("(")[1].split(",")[0]) for line in rows]
    assert lefts == sorted(lefts) and lefts[0] < 276 and lefts[-1] > 380  # numbered left to right
    assert rows[0].endswith("<- animated") and sum("<- animated" in r for r in rows) == 1  # face 0, as asked
    drawn = np.asarray(Image.open(out).convert("RGB")).astype(int)
    plain = np.asarray(canvas).astype(int)
    assert drawn.shape == plain.shape
    changed = np.argwhere(np.abs(drawn - plain).sum(-1) > 0)
    assert changed[:, 1].min() < 276 and changed[:, 1].max() > 380  # boxes on both faces
    rc = main(["preview-crop", "--image", str(tmp_path / "group.png"), "-o", str(out), "--landmarks", "dlib",
               "--face-index", "99"])
    assert rc == 1 and "InvalidParams" in capsys.readouterr().err


def test_generate_uploads_references_and_a_video_source_under_drop_names(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    from sadtalker.local.generate import upload_job

    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(k, v)
    files = {}
    for name in ("clip.MOV", "nod.mp4", "blink.webm"):
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bkt")
        job_input = upload_job(s3, "bkt", "g1", files["clip.MOV"], None,
                               {"ref_pose": files["nod.mp4"], "ref_eyeblink": files["blink.webm"]},
                               {"length_of_audio": 1.0})
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"])
        assert s3.get_object(Bucket="bkt", Key="inbox/g1/source.mov")["Body"].read() == b"clip.MOV"
    assert keys == ["inbox/g1/ref_eyeblink.webm", "inbox/g1/ref_pose.mp4", "inbox/g1/source.mov"]
    assert job_input == {"image": "s3://bkt/inbox/g1/source.mov", "params": {
        "length_of_audio": 1.0, "ref_pose": "inbox/g1/ref_pose.mp4", "ref_eyeblink": "inbox/g1/ref_eyeblink.webm"}}
    assert read_folder(keys, JobKeys("g1")).image == "inbox/g1/source.mov"

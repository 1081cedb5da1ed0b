"""Bad-input catalog: every case is a real job through the real state machine on the local runtime.

Each case asserts: the execution's final state and error name (or success where the input is valid),
``outputs/<job>/error.json`` = name + a human sentence, the inputs unchanged (bytes and ETag), no
``outputs/<job>/video.mp4`` for failures, and only lifecycle-expired intermediates in ``work/<job>/``
(conftest.WORK_ALLOWED). All cases run in ONE runtime, a few jobs at a time (the runtime is global per
process); the successful ones use a 0.2 s clip (5 frames) and the reduced-profile synthetic weights.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from rel_helpers import (
    assert_failed_cleanly,
    assert_succeeded,
    encode,
    entered_states,
    etags,
    ffmpeg,
    portrait_image,
    short_speech,
    speech_pcm,
    wav_bytes,
)

from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job  # whole jobs through the local state machine

OK = "SUCCEEDED"
# what a user may paste: a presigned URL (its credential and signature must never be echoed anywhere)
PRESIGNED = ("https://my-bucket.s3.amazonaws.com/face.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261126%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLETOKEN&X-Amz-Signature=0123456789abcdef")
CLIP_S = 0.2  # 5 frames: enough to exercise every stage, cheap to render


# --- inputs --------------------------------------------------------------------------------------------------
def png_portrait() -> bytes:
    return encode(portrait_image(), "PNG")


def gradient_png() -> bytes:
    from PIL import Image

    ramp = np.linspace(0, 255, 320, dtype=np.float32)
    grad = np.stack([np.tile(ramp, (320, 1)), np.tile(ramp[:, None], (1, 320)), np.full((320, 320), 128.0)], -1)
    return encode(Image.fromarray(grad.astype(np.uint8)), "PNG")


def two_faces_png() -> bytes:
    from PIL import Image

    face = portrait_image().resize((320, 320))
    canvas = Image.new("RGB", (640, 320))
    canvas.paste(face, (0, 0))
    canvas.paste(face.resize((240, 240)), (360, 40))
    return encode(canvas, "PNG")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def huge_header_png(side: int = 30000) -> bytes:
    """A 30000 x 30000 RGB PNG header with a few bytes of data: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) \
        + png_chunk(b"IEND", b"")


def cmyk_jpeg() -> bytes:
    return encode(portrait_image().convert("CMYK"), "JPEG", quality=95)


def png_16bit() -> bytes:
    import cv2

    rgb = np.asarray(portrait_image()).astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buf.tobytes()


def exif_rotated_jpeg() -> bytes:
    """Stored on its side with EXIF Orientation 6 (rotate 90 CW to display), as phones write portraits."""
    from PIL import Image

    stored = portrait_image().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif() -> bytes:
    """A blank frame, then the face (256 px: dlib finds no face of a 128 px portrait)."""
    from PIL import Image

    im = portrait_image().resize((256, 256))
    blank = Image.new("RGB", im.size, (90, 90, 90))
    return encode(blank, "GIF", save_all=True, append_images=[im, im.rotate(10)], duration=100, loop=0)


def portrait_clip() -> bytes:
    """An H.264 clip that opens on a blank frame, then shows the portrait: the job animates frame 1."""
    import tempfile
    from pathlib import Path

    import imageio_ffmpeg

    face = np.asarray(portrait_image().resize((256, 256)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = imageio_ffmpeg.write_frames(str(path), (256, 256), fps=25, codec="libx264", quality=9)
        writer.send(None)
        for frame in (np.full_like(face, 90), face, face):
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return path.read_bytes()


def speech_at(rate: int, channels: int) -> bytes:
    return ffmpeg(["-ar", str(rate), "-ac", str(channels), "-c:a", "pcm_s16le"], "out.wav", short_speech(CLIP_S))


def truncated_m4a() -> bytes:
    m4a = ffmpeg(["-c:a", "aac", "-b:a", "64k"], "out.m4a", short_speech(1.0))
    return m4a[: len(m4a) // 2]


def video_without_audio() -> bytes:
    return ffmpeg(["-f", "lavfi", "-i", "testsrc=size=128x128:rate=25:duration=0.5", "-an", "-c:v", "libx264",
                   "-pix_fmt", "yuv420p"], "out.mp4")


def silent_wav() -> bytes:
    return wav_bytes(np.zeros(int(16000 * CLIP_S), np.int16), 16000)


# --- the catalog -------------------------------------------------------------------------------------------------
Maker = Callable[[], bytes]


@dataclass
class Case:
    id: str
    expect: str  # "SUCCEEDED" or one of our error names
    state: str | None = None  # the state error.json must name
    image: tuple[str, Maker] | None = ("face.png", png_portrait)
    audio: tuple[str, Maker] | None = ("speech.wav", lambda: short_speech(CLIP_S))
    params: Any = field(default_factory=dict)
    job_input: Callable[[str, str | None, str | None], Any] | None = None  # (bucket, image key, audio key)
    params_json: bytes | None = None  # given -> started through the S3-drop starter
    delete: str | None = None  # "image" / "audio": deleted by the user after ValidateJob

    @property
    def job_id(self) -> str:
        return "c-" + self.id


def uri(bucket: str, key: str | None) -> str:
    return f"s3://{bucket}/{key}"


CASES: list[Case] = [
    # images
    Case("img-no-face", "NoFaceDetected", "Preprocess", image=("face.png", gradient_png)),
    Case("img-several-faces", OK, image=("faces.png", two_faces_png)),
    Case("img-tiny", "InvalidImage", "ValidateJob", image=("face.png", lambda: encode(portrait_image().resize((40, 40)), "PNG"))),
    Case("img-huge-header", "InvalidImage", "ValidateJob", image=("face.png", huge_header_png)),
    Case("img-truncated", "InvalidImage", "Preprocess", image=("face.png", lambda: png_portrait()[:60_000])),
    Case("img-wrong-type", "InvalidImage", "ValidateJob", image=("face.png", lambda: short_speech(0.5))),
    Case("img-empty", "InvalidImage", "ValidateJob", image=("face.png", lambda: b"")),
    Case("img-cmyk", OK, image=("face.jpg", cmyk_jpeg)),
    Case("img-16bit", OK, image=("face.png", png_16bit)),
    Case("img-animated-gif", OK, image=("face.gif", animated_gif)),
    Case("img-video-source", OK, image=("source.mp4", portrait_clip)),
    # a video source through the S3 drop: named source.<ext>, next to an mp4 speech file
    Case("img-video-source-drop", OK, image=("source.mp4", portrait_clip),
         audio=("speech.mp4", lambda: ffmpeg(["-c:a", "aac"], "out.mp4", short_speech(CLIP_S))), params_json=b"{}"),
    Case("img-video-not-a-video", "InvalidImage", "ValidateJob", image=("source.mp4", png_portrait)),
    # InvalidParams may come from either branch of the Parallel, so the record names the Parallel state
    Case("img-face-index-out-of-range", "InvalidParams", "PreprocessAndAudioFeatures", params={"face_index": 5}),
    Case("img-exif-rotated", OK, image=("face.jpg", exif_rotated_jpeg)),
    # audio
    Case("aud-empty", "InvalidAudio", "ValidateJob", audio=("speech.wav", lambda: b"")),
    Case("aud-silent", OK, audio=("speech.wav", silent_wav)),
    # refused from the header (cut before its moov index box): ValidateJob probes the container
    Case("aud-truncated", "InvalidAudio", "ValidateJob", audio=("speech.m4a", truncated_m4a)),
    Case("aud-too-short", "InvalidAudio", "AudioFeatures",
         audio=("speech.wav", lambda: wav_bytes(speech_pcm(0.02)[0], 16000))),
    Case("aud-wrong-type", "InvalidAudio", "ValidateJob", audio=("speech.wav", png_portrait)),
    Case("aud-wrong-extension", "InvalidAudio", "ValidateJob", audio=("speech.txt", lambda: short_speech(CLIP_S))),
    Case("aud-over-limit", "InvalidAudio", "AudioFeatures", audio=("speech.wav", lambda: short_speech(3.0)),
         params={"max_audio_seconds": 1.0}),
    Case("aud-48k-stereo", OK, audio=("speech.wav", lambda: speech_at(48000, 2))),
    Case("aud-11k-3ch", OK, audio=("speech.wav", lambda: speech_at(11025, 3))),
    Case("aud-video-no-audio", "InvalidAudio", "ValidateJob", audio=("speech.mp4", video_without_audio)),
    # idle mode: no speech at all; speech and idle mode together are refused
    Case("aud-idle", OK, audio=None,
         job_input=lambda b, i, a: {"image": uri(b, i), "params": {"length_of_audio": CLIP_S, "use_blink": False}}),
    Case("aud-idle-and-speech", "InvalidParams", "ValidateJob", params={"length_of_audio": CLIP_S}),
    # params
    Case("par-unknown-key", "InvalidParams", "ValidateJob", params={"enhance": "gfpgan"}),
    Case("par-wrong-type", "InvalidParams", "ValidateJob", params={"size": "256"}),
    Case("par-out-of-range", "InvalidParams", "ValidateJob", params={"pose_style": 46}),
    Case("par-chunk-over-time-budget", "InvalidParams", "ValidateJob", params={"chunk_frames": 500}),
    Case("par-not-an-object", "InvalidParams", "ValidateJob", params=[1, 2]),
    # over the cost cap: quoted from the WAV header in ValidateJob; an M4A's length needs decoding, so
    # PlanChunks quotes the decoded frames - both before anything is rendered
    Case("par-over-cost-cap", "CostLimitExceeded", "ValidateJob", params={"max_cost_usd": 0.001}),
    Case("par-over-cost-cap-m4a", "CostLimitExceeded", "PlanChunks", params={"max_cost_usd": 0.001},
         audio=("speech.m4a", lambda: ffmpeg(["-c:a", "aac", "-b:a", "64k"], "out.m4a", short_speech(CLIP_S)))),
    Case("par-invalid-json", "InvalidParams", "ValidateJob", params_json=b'{"still": true,'),
    Case("par-oversized", "InvalidParams", "ValidateJob",
         params_json=json.dumps({"result_dir": "x" * 200_000}).encode()),
    # object keys
    Case("key-spaces", OK, image=("my portrait photo.png", png_portrait)),
    Case("key-unicode", OK, image=("Jürgen фото 写真.png", png_portrait)),
    Case("key-dotdot", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, "inbox/c-key-dotdot/../c-key-dotdot/face.png"), "audio": uri(b, a)}),
    Case("key-very-long", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, "inbox/x/" + "a" * 1100 + ".png"), "audio": uri(b, a)}),
    Case("key-control-char", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, "inbox/c-key-control-char/face\n.png"), "audio": uri(b, a)}),
    Case("key-missing-object", "InvalidImage", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, "inbox/c-key-missing-object/nobody.png"), "audio": uri(b, a)}),
    Case("key-image-deleted-mid-job", "InvalidInput", None, delete="image"),
    Case("key-audio-deleted-mid-job", "InvalidInput", None, delete="audio"),
    # start inputs
    Case("start-missing-image", "InvalidParams", "ValidateJob", job_input=lambda b, i, a: {"audio": uri(b, a)}),
    Case("start-missing-audio", "InvalidParams", "ValidateJob", job_input=lambda b, i, a: {"image": uri(b, i)}),
    Case("start-non-s3-uri", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": PRESIGNED, "audio": uri(b, a)}),
    Case("start-other-bucket", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": "s3://someone-elses-bucket/face.png", "audio": uri(b, a)}),
    Case("start-not-an-object", "InvalidInput", "ValidateJob", job_input=lambda b, i, a: [uri(b, i), uri(b, a)]),
    Case("start-unknown-field", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, i), "audio": uri(b, a), "callback": "https://x"}),
    Case("start-work-prefix", "InvalidInput", "ValidateJob",
         job_input=lambda b, i, a: {"image": uri(b, "work/other-job/source.png"), "audio": uri(b, a)}),
]
BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES)


@dataclass
class Outcome:
    case: Case
    arn: str | None
    desc: dict
    inputs_before: dict[str, tuple[str, bytes]]


def _start(rt: LocalRuntime, case: Case) -> str:
    s3 = rt.client("s3")
    prefix = f"inbox/{case.job_id}/"
    image_key = audio_key = None
    if case.params_json is not None:
        s3.put_object(Bucket=rt.bucket, Key=prefix + "params.json", Body=case.params_json)
    if case.image:
        image_key = prefix + case.image[0]
        s3.put_object(Bucket=rt.bucket, Key=image_key, Body=case.image[1]())
    if case.audio:
        audio_key = prefix + case.audio[0]
        s3.put_object(Bucket=rt.bucket, Key=audio_key, Body=case.audio[1]())
    if case.params_json is not None:  # the S3-drop path: starter -> admission queue -> admit_job reads params.json
        out = rt.call("sadtalker-starter", {"detail": {"bucket": {"name": rt.bucket}, "object": {"key": audio_key}}})
        assert out["status"] == "queued", out
        for _ in range(100):  # the settle delay, then an admission pass (of any case's thread) starts it
            rt.admit_queued()
            runs = [e["executionArn"] for e in rt.executions() if e["name"] == case.job_id]
            if runs:
                return runs[0]
            time.sleep(0.1)
        raise AssertionError(f"{case.job_id} was never admitted")
    job_input = (case.job_input(rt.bucket, image_key, audio_key) if case.job_input else
                 {"image": uri(rt.bucket, image_key), "audio": uri(rt.bucket, audio_key), "params": case.params})
    return rt.start_execution(case.job_id, job_input)


def _run(rt: LocalRuntime, case: Case) -> Outcome:
    arn = _start(rt, case)
    before = etags(rt, f"inbox/{case.job_id}/")
    return Outcome(case, arn, rt.wait(arn, timeout=600), before)


@pytest.fixture(scope="module")
def rt(reduced_weights, template):
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-catalog", template=template) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def outcomes(rt) -> dict[str, Outcome]:
    """Run the whole catalog once: failures first (cheap), a few jobs at a time."""
    deletions = {c.job_id: c.delete for c in CASES if c.delete}
    s3 = rt.client("s3")

    def deleting(handler_name: str, what: str):
        real = rt.handlers[handler_name]
        key_field = "image_key" if what == "image" else "audio_key"

        def handler(event, ctx):
            if deletions.get(event.get("job_id")) == what:  # the user removes the object while the job runs
                s3.delete_object(Bucket=rt.bucket, Key=event[key_field])
            return real(event, ctx)

        rt.handlers[handler_name] = handler

    deleting("sadtalker-preprocess", "image")
    deleting("sadtalker-audio-features", "audio")
    ordered = sorted(CASES, key=lambda c: c.expect == OK)
    with ThreadPoolExecutor(max_workers=3) as pool:
        return {o.case.id: o for o in pool.map(lambda c: _run(rt, c), ordered)}


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_catalog_case(rt, outcomes, case_id):
    o = outcomes[case_id]
    case, job = o.case, o.case.job_id
    if case.expect == OK:
        result = assert_succeeded(rt, job, o.desc)
        assert 1 <= result["frames"] <= round(CLIP_S * 25) + 1
    else:
        assert_failed_cleanly(rt, job, o.desc, case.expect, case.state)
        assert not rt.keys(f"outputs/{job}/video.mp4")
        if case.state == "ValidateJob":  # refused before any compute: no retry, nothing in work/
            assert entered_states(rt, o.arn) == ["ReceiveJob", "ValidateJob", "RecordFailure", "JobFailed"]
            assert rt.keys(f"work/{job}/") == []
    after = etags(rt, f"inbox/{job}/")
    expected = dict(o.inputs_before)
    if case.delete:  # the one the user deleted is gone, the other is untouched
        expected = {k: v for k, v in expected.items() if not k.endswith(case.image[0] if case.delete == "image"
                                                                           else case.audio[0])}
    assert after == expected, f"inputs of {job} changed"


def test_every_category_has_cases():
    prefixes = {c.id.split("-")[0] for c in CASES}
    assert prefixes == {"img", "aud", "par", "key", "start"}
    assert len(CASES) >= 30


def test_deleted_inputs_fail_in_the_stage_that_reads_them(rt, outcomes):
    rec_i = json.loads(rt.get("outputs/c-key-image-deleted-mid-job/error.json"))
    rec_a = json.loads(rt.get("outputs/c-key-audio-deleted-mid-job/error.json"))
    assert rec_i["state"] in ("Preprocess", "PreprocessAndAudioFeatures") and "does not exist" in rec_i["message"]
    assert rec_a["state"] in ("AudioFeatures", "PreprocessAndAudioFeatures") and "does not exist" in rec_a["message"]


def test_exif_rotation_is_applied_before_the_face_is_found(rt, outcomes):
    import io

    from PIL import Image

    original = np.asarray(Image.open(io.BytesIO(rt.get("work/c-img-exif-rotated/original.png"))).convert("RGB"))
    upright = np.asarray(portrait_image())
    assert original.shape == upright.shape
    assert np.abs(original.astype(int) - upright.astype(int)).mean() < 6  # JPEG loss only, not a rotation


def test_video_sources_animate_their_first_frame_with_a_face(rt, outcomes):
    import io

    from PIL import Image

    face = np.asarray(portrait_image().resize((256, 256))).astype(int)
    for job in ("c-img-video-source", "c-img-video-source-drop", "c-img-animated-gif"):
        original = np.asarray(Image.open(io.BytesIO(rt.get(f"work/{job}/original.png"))).convert("RGB"))
        assert original.shape == face.shape and np.abs(original - face).mean() < 6  # frame 1, not the blank frame 0
    start = json.loads(outcomes["img-video-source-drop"].desc["input"])
    assert start["image"].endswith("inbox/c-img-video-source-drop/source.mp4")
    assert start["audio"].endswith("inbox/c-img-video-source-drop/speech.mp4")


def test_idle_mode_is_a_silent_clip_of_the_asked_length(rt, outcomes):
    import io

    from sadtalker.video import probe

    result = json.loads(rt.get("outputs/c-aud-idle/result.json"))
    assert result["frames"] == int(CLIP_S * 25) and result["params"]["use_blink"] is False
    audio = np.load(io.BytesIO(rt.get("work/c-aud-idle/audio.npz")))
    assert not audio["wav"].any() and not audio["indiv_mels"].any()
    assert probe_bytes(rt.get("outputs/c-aud-idle/video.mp4"), probe).frames == int(CLIP_S * 25)
    rec = json.loads(rt.get("outputs/c-img-face-index-out-of-range/error.json"))
    assert "face_index" in rec["message"] and "from left to right" in rec["message"]


def probe_bytes(data: bytes, probe):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        path.write_bytes(data)
        return probe(path)


def test_several_faces_pick_one_and_say_how_many(rt, outcomes):
    import io

    face = np.load(io.BytesIO(rt.get("work/c-img-several-faces/face.npz")))
    assert int(face["num_faces"]) >= 2


def test_over_limit_audio_message_names_the_limit(rt, outcomes):
    rec = json.loads(rt.get("outputs/c-aud-over-limit/error.json"))
    assert "max_audio_seconds" in rec["message"] and "1 s" in rec["message"]


def test_oversized_params_message_names_the_limit(rt, outcomes):
    rec = json.loads(rt.get("outputs/c-par-oversized/error.json"))
    assert "bytes" in rec["message"]
    desc = outcomes["par-oversized"].desc
    assert len(desc["input"]) < 100_000  # the oversized file itself never travels in the state data


def test_a_presigned_url_is_refused_without_echoing_its_credentials(rt, outcomes):
    o = outcomes["start-non-s3-uri"]
    failures = [e.get("taskFailedEventDetails") or e.get("executionFailedEventDetails") for e in rt.history(o.arn)
                if e["type"] in ("TaskFailed", "LambdaFunctionFailed", "ExecutionFailed")]
    assert failures
    record = rt.get("outputs/c-start-non-s3-uri/error.json").decode()
    text = record + o.desc["cause"] + json.dumps(failures)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "0123456789abcdef", "FwoGZXIvYXdzEXAMPLETOKEN", "X-Amz-Credential"):
        assert secret not in text, secret
    assert "my-bucket.s3.amazonaws.com/face.png?[REDACTED]" in json.loads(record)["message"]

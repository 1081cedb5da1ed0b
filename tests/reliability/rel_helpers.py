"""Helpers of the reliability tests: inputs made in code (bytes) and job-level checks."""

from __future__ import annotations

import io
import json
import re
import subprocess
import wave
from pathlib import Path

import numpy as np

from sadtalker.jobs import JobKeys

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

WORK_ALLOWED = re.compile(
    r"^work/[^/]+/(job\.json|plan\.json|original\.png|source\.png|face\.npz|audio\.npz|coeffs\.npz|ref_(pose|eyeblink)\.npz"
    r"|chunks/\d{6}-\d{6}\.npz|timings/[\w.-]+\.json|stream-audio/(audio\.json|audio-\d{5}\.ts)"
    r"|chunk-items\.json|range-items\.json|segments/\d{6}-\d{6}\.ts|range-errors/\d{6}-\d{6}\.json"
    r"|map-results/[\w-]+/(manifest|SUCCEEDED_\d+|FAILED_\d+)\.json)$"
)


# --- media made in code --------------------------------------------------------------------------------------
def portrait_image():
    from PIL import Image

    return Image.open(EXAMPLES / "portrait.png").convert("RGB")


def encode(im, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def speech_pcm(seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of the bundled speech (int16 mono) and its rate."""
    with wave.open(str(EXAMPLES / "speech.wav"), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(int(rate * seconds)), dtype="<i2")
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
    return pcm.copy(), rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """int16 samples, shape (n,) or (n, channels) -> a WAV file."""
    samples = np.asarray(samples, dtype="<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def short_speech(seconds: float = 0.3) -> bytes:
    pcm, rate = speech_pcm(seconds)
    return wav_bytes(pcm, rate)


def ffmpeg(args: list[str], out_name: str, data: bytes | None = None, in_name: str = "in.wav") -> bytes:
    """The bundled ffmpeg with an argument list: ``data`` (if any) is the input file, returns the output's bytes."""
    import tempfile

    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y"]
        if data is not None:
            (Path(tmp) / in_name).write_bytes(data)
            cmd += ["-i", str(Path(tmp) / in_name)]
        out = Path(tmp) / out_name
        subprocess.run([*cmd, *args, str(out)], check=True, capture_output=True, timeout=60)
        return out.read_bytes()


# --- job-level checks ------------------------------------------------------------------------------------------
def etags(rt, prefix: str) -> dict[str, tuple[str, bytes]]:
    """key -> (ETag, bytes) of every object under ``prefix``."""
    s3 = rt.client("s3")
    out = {}
    for key in rt.keys(prefix):
        obj = s3.get_object(Bucket=rt.bucket, Key=key)
        out[key] = (obj["ETag"], obj["Body"].read())
    return out


def entered_states(rt, arn: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in rt.history(arn) if e["type"].endswith("StateEntered")]


def assert_failed_cleanly(rt, job_id: str, desc: dict, error: str, state: str | None = None) -> dict:
    """FAILED with our name; error.json = {error, message (a sentence), state, job_id}; no results."""
    assert desc["status"] == "FAILED", (job_id, desc.get("status"), desc.get("error"), desc.get("cause"))
    assert desc["error"] == error, (job_id, desc.get("error"), desc.get("cause"))
    rec = json.loads(rt.get(f"outputs/{job_id}/error.json"))
    assert rec["error"] == error and rec["job_id"] == job_id
    assert rec["message"] == desc["cause"]
    assert len(rec["message"]) >= 15 and " " in rec["message"], rec  # a human sentence, not a code
    assert "Traceback" not in rec["message"]
    if state is not None:
        assert rec["state"] == state, rec
    assert rt.keys(f"outputs/{job_id}/") == [f"outputs/{job_id}/error.json"]
    assert_work_leftovers(rt, job_id)
    return rec


def assert_succeeded(rt, job_id: str, desc: dict) -> dict:
    assert desc["status"] == "SUCCEEDED", (job_id, desc.get("error"), desc.get("cause"))
    stream = JobKeys(job_id)
    keys = [k for k in rt.keys(f"outputs/{job_id}/") if k != stream.stream and not k.startswith(stream.stream_parts)]
    assert keys == [f"outputs/{job_id}/{n}" for n in ("preview.jpg", "result.json", "video.mp4")], keys
    result = json.loads(rt.get(f"outputs/{job_id}/result.json"))
    assert result["job_id"] == job_id and result["status"] == "SUCCEEDED"
    assert rt.get(f"outputs/{job_id}/video.mp4")[4:8] == b"ftyp"
    assert_work_leftovers(rt, job_id)
    return result


def assert_work_leftovers(rt, job_id: str) -> None:
    stray = [k for k in rt.keys(f"work/{job_id}/") if not WORK_ALLOWED.match(k)]
    assert not stray, f"unexpected objects left in work/{job_id}/: {stray}"

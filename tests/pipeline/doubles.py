"""Test doubles for stage modules other helpers have not landed yet (used only while they are missing).

``install_missing(monkeypatch)`` puts a double in sys.modules for each of ``sadtalker.stages.preprocess``
and ``sadtalker.video`` that cannot be imported, and returns the names it replaced, so the pipeline tests
exercise the real ASL, handlers and runtime now and switch to the real stages as soon as they exist.
The doubles honour the STAGES.md contracts (keys, npz fields, dtypes) but compute nothing clever.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _missing(module: str, attr: str) -> bool:
    try:
        return not hasattr(importlib.import_module(module), attr)
    except ImportError:
        return True


# --- preprocess double ---------------------------------------------------------------------------------------
def _preprocess(storage, job, image_key, params, models):
    from PIL import Image

    from sadtalker.errors import NoFaceDetected

    with Image.open(io.BytesIO(storage.get(image_key))) as im:
        rgb = np.asarray(im.convert("RGB"))
    gray = rgb.astype(np.float32).mean(axis=2)
    detail = np.abs(np.diff(gray, n=2, axis=0)).mean() + np.abs(np.diff(gray, n=2, axis=1)).mean()
    if detail < 0.5:  # a smooth gradient or a flat image has no face-like structure
        raise NoFaceDetected(f"no face was found in {image_key}")
    h, w = gray.shape
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(rgb[y0:y0 + side, x0:x0 + side]).resize((params.size, params.size), Image.BICUBIC)

    def png(a) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(a)).save(buf, format="PNG")
        return buf.getvalue()

    storage.put(job.original_image, png(rgb))
    storage.put(job.source_image, png(crop))
    neg = np.full(4, -1, np.int64)
    storage.put_npz(job.face, {
        "coeff_3dmm": np.zeros((1, 73), np.float32), "full_3dmm": np.zeros((1, 257), np.float32),
        "crop_info_size": np.array([side, side], np.int64), "crop_info_box": neg,
        "crop_info_quad_f64": np.full(4, -1.0), "lm68": np.zeros((68, 2), np.float32),
        "trans_params": np.zeros(5), "num_faces": np.int64(1),
    })
    return {"face_key": job.face, "source_key": job.source_image, "num_faces": 1}


# --- video double -----------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    path: str
    frames: int
    width: int
    height: int
    fps: float
    video_codec: str = "h264"
    audio_codec: str = "aac"
    duration_s: float = 0.0


def _encode_video(frames, wav_16k, out_path, fps=25):
    import wave

    import imageio_ffmpeg

    out_path = Path(out_path)
    wav_path = out_path.with_suffix(".wav")
    pcm = (np.clip(np.asarray(wav_16k, np.float32), -1, 1) * 32767).astype("<i2")
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    it = iter(frames)
    first = np.asarray(next(it))
    h, w_ = first.shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(out_path), (w_ - w_ % 2, h - h % 2), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
        audio_path=str(wav_path), audio_codec="aac", output_params=["-movflags", "+faststart"],
        ffmpeg_log_level="error", macro_block_size=1,
    )
    writer.send(None)
    n = 0
    for f in _chain(first, it):
        writer.send(np.ascontiguousarray(np.asarray(f)[: h - h % 2, : w_ - w_ % 2]))
        n += 1
    writer.close()
    wav_path.unlink(missing_ok=True)
    return VideoInfo(str(out_path), n, w_ - w_ % 2, h - h % 2, float(fps), duration_s=n / fps)


def _chain(first, rest):
    yield first
    yield from rest


def _probe(path):
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                           "-c", "copy", "-f", "null", "-"], capture_output=True, text=True)
    err = proc.stderr
    frames = [int(x) for x in re.findall(r"frame=\s*(\d+)", err)]
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err)
    seconds = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    return {
        "video_codec": "h264" if re.search(r"Video: h264", err) else None,
        "audio_codec": "aac" if re.search(r"Audio: aac", err) else None,
        "frames": frames[-1] if frames else 0,
        "duration_s": seconds,
    }


def install_missing(monkeypatch) -> list[str]:
    replaced = []
    if _missing("sadtalker.stages.preprocess", "preprocess"):
        mod = types.ModuleType("sadtalker.stages.preprocess")
        mod.preprocess = _preprocess
        monkeypatch.setitem(sys.modules, "sadtalker.stages.preprocess", mod)
        import sadtalker.stages as stages

        monkeypatch.setattr(stages, "preprocess", mod, raising=False)
        replaced.append("sadtalker.stages.preprocess")
    if _missing("sadtalker.video", "encode_video"):
        mod = types.ModuleType("sadtalker.video")
        mod.encode_video, mod.probe, mod.VideoInfo = _encode_video, _probe, VideoInfo
        monkeypatch.setitem(sys.modules, "sadtalker.video", mod)
        import sadtalker

        monkeypatch.setattr(sadtalker, "video", mod, raising=False)
        replaced.append("sadtalker.video")
    return replaced

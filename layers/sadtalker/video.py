"""Video I/O with imageio-ffmpeg's static ffmpeg binary (argument lists only, never a shell).

``encode_video`` streams RGB frames through a pipe into libx264 (yuv420p, +faststart), then muxes AAC audio
made from the 16 kHz waveform trimmed or zero-padded to exactly the video length (frames / fps). Odd frame
sizes are PADDED by one pixel (bottom row / right column repeated), never cropped, so no content is lost.
Two passes: (1) frames -> H.264 video-only file (the frame count is known only at the end of a stream),
(2) copy the video stream + encode the audio at its exact length. Outputs are written under a temporary
name and renamed into place.

``probe`` reads codec names, size and duration from ``ffmpeg -i`` and counts frames/samples by decoding
(imageio-ffmpeg ships no ffprobe). ``contact_sheet`` makes a JPEG preview grid.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio.decode import ffmpeg_exe
from .audio.features import FPS, SAMPLE_RATE

AUDIO_RATE = SAMPLE_RATE  # the pipeline's waveform rate


@dataclass(frozen=True)
class VideoInfo:
    path: str
    frames: int
    width: int
    height: int
    fps: int
    duration: float  # seconds of video (frames / fps)
    audio_samples: int  # 16 kHz samples muxed (before AAC)


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by repeating the last row/column (yuv420p needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def fit_audio(wav: np.ndarray, num_frames: int, fps: int = FPS, rate: int = AUDIO_RATE) -> np.ndarray:
    """Waveform trimmed or zero-padded to num_frames / fps seconds."""
    n = int(round(num_frames * rate / fps))
    wav = np.asarray(wav, np.float32).reshape(-1)
    return wav[:n] if len(wav) >= n else np.concatenate([wav, np.zeros(n - len(wav), np.float32)])


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"ffmpeg failed to {what}: {' | '.join(tail)}")
    return proc


def encode_video(
    frames_iter: Iterable[np.ndarray],
    wav_16k: np.ndarray | None,
    out_path: str | os.PathLike,
    fps: int = FPS,
    crf: int = 18,
    preset: str = "medium",
) -> VideoInfo:
    """Encode RGB uint8 frames (+ 16 kHz float32 audio) into an MP4; returns what was written."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    exe = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix=".enc-", dir=out_path.parent) as tmp:
        video_only = Path(tmp) / "video.mp4"
        proc = None
        count, shape = 0, None
        try:
            for frame in frames_iter:
                frame = even_frame(np.asarray(frame))
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
                if proc is None:
                    shape = frame.shape
                    args = [
                        exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{shape[1]}x{shape[0]}", "-r", str(fps), "-i", "pipe:0",
                        "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                        "-r", str(fps), str(video_only),
                    ]  # fmt: skip
                    # stderr to a file: a full pipe would block ffmpeg while we block writing frames
                    errlog = open(Path(tmp) / "encode.log", "wb")  # noqa: SIM115 - closed below
                    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=errlog)
                elif frame.shape != shape:
                    raise ValueError(f"frame {count} is {frame.shape}, the first frame was {shape}")
                proc.stdin.write(np.ascontiguousarray(frame).tobytes())
                count += 1
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
                errlog.close()
            raise
        if proc is None:
            raise ValueError("no frames to encode")
        proc.stdin.close()
        code = proc.wait()
        errlog.close()
        if code != 0:
            err = (Path(tmp) / "encode.log").read_text(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed to encode the frames: {err[-300:]}")

        tmp_out = Path(tmp) / ("out" + out_path.suffix)
        args = [exe, "-y", "-loglevel", "error", "-i", str(video_only)]
        samples = 0
        if wav_16k is not None:
            audio = fit_audio(wav_16k, count, fps)
            samples = len(audio)
            raw = Path(tmp) / "audio.f32"
            audio.astype("<f4").tofile(raw)
            args += ["-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "1", "-i", str(raw), "-map", "0:v:0", "-map", "1:a:0"]
            args += ["-c:a", "aac", "-b:a", "128k"]
        args += ["-c:v", "copy", "-movflags", "+faststart", str(tmp_out)]
        _run(args, "mux the audio")
        os.replace(tmp_out, out_path)
    assert shape is not None
    return VideoInfo(str(out_path), count, shape[1], shape[0], fps, count / fps, samples)


# --- probing ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeInfo:
    video_codec: str | None
    audio_codec: str | None
    width: int
    height: int
    pix_fmt: str | None
    frames: int
    duration: float  # container duration from the header
    video_duration: float  # decoded frames / fps
    audio_duration: float  # decoded audio samples / rate
    fps: float


def _decode_count(exe: str, path: str, stream: str) -> str:
    proc = _run([exe, "-nostdin", "-i", path, "-map", stream, "-f", "null", "-"], "decode " + stream)
    return proc.stderr.decode(errors="replace")


def probe(path: str | os.PathLike) -> ProbeInfo:
    exe, path = ffmpeg_exe(), str(path)
    header = subprocess.run([exe, "-nostdin", "-i", path], capture_output=True).stderr.decode(errors="replace")
    if "Invalid data" in header or "No such file" in header:
        raise ValueError(f"{path} is not a readable media file")
    vcodec = re.search(r"Stream #\S+.*?: Video: (\w+)", header)
    acodec = re.search(r"Stream #\S+.*?: Audio: (\w+)", header)
    size = re.search(r"Video: .*?, (\w+)(?:\([^)]*\))?, (\d{2,5})x(\d{2,5})", header)
    fps_m = re.search(r"(\d+(?:\.\d+)?) fps", header)
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", header)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    fps = float(fps_m.group(1)) if fps_m else 0.0
    frames = 0
    if vcodec:
        out = _decode_count(exe, path, "0:v:0")
        counts = re.findall(r"frame=\s*(\d+)", out)
        frames = int(counts[-1]) if counts else 0
    audio_duration = 0.0
    if acodec:
        proc = subprocess.run(
            [exe, "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar",
             str(AUDIO_RATE), "-"], capture_output=True,
        )  # fmt: skip
        audio_duration = len(proc.stdout) / 2 / AUDIO_RATE
    return ProbeInfo(
        video_codec=vcodec.group(1) if vcodec else None,
        audio_codec=acodec.group(1) if acodec else None,
        width=int(size.group(2)) if size else 0,
        height=int(size.group(3)) if size else 0,
        pix_fmt=size.group(1) if size else None,
        frames=frames,
        duration=duration,
        video_duration=frames / fps if fps else 0.0,
        audio_duration=audio_duration,
        fps=fps,
    )


# --- preview ------------------------------------------------------------------------------------------
def contact_sheet(frames: Sequence[np.ndarray], count: int = 8, columns: int = 4, tile: int = 256, quality: int = 85) -> bytes:
    """A JPEG grid of ``count`` evenly spaced frames (RGB uint8), each scaled to ``tile`` px wide."""
    import cv2

    if len(frames) == 0:
        raise ValueError("no frames for a contact sheet")
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    tiles = []
    for i in picks:
        f = np.asarray(frames[i])
        h = max(1, round(f.shape[0] * tile / f.shape[1]))
        tiles.append(cv2.resize(f, (tile, h), interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = np.zeros((rows * th, cols * tile, 3), np.uint8)
    for n, t in enumerate(tiles):
        r, c = divmod(n, cols)
        sheet[r * th : r * th + t.shape[0], c * tile : (c + 1) * tile] = t
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of the contact sheet failed")
    return buf.tobytes()

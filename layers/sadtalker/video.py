"""Video I/O with imageio-ffmpeg's static ffmpeg binary (argument lists only, never a shell).

The video of a job is a sequence of SEGMENTS, each encoded once and never again:

* ``encode_segment`` streams RGB frames [first, first + n) through a pipe into libx264 and writes one MPEG-TS
  file. Every segment gets the same pinned settings (``X264_ARGS``): the concatenation copies the H.264
  stream as is, so all segments must agree on profile, level and parameter sets. A segment starts on an IDR
  frame (the first frame of an x264 stream always is one) and places keyframes only every ``GOP_FRAMES``
  (no scene-cut keyframes); without B-frames every frame's PTS is exactly its clip index / fps, so the
  segments' timestamps continue one another (``-output_ts_offset``) and an HLS audio rendition starting at
  0 lines up with them.
* ``concat_segments`` joins the segments with ffmpeg's concat demuxer (``-c:v copy``: no re-encode) and adds
  one AAC track made from the 16 kHz waveform trimmed or zero-padded to exactly num_frames / fps
  (``fit_audio``), with +faststart.

Odd frame sizes are PADDED by one pixel (bottom row / right column repeated), never cropped, so no content
is lost. Outputs are written under a temporary name and renamed into place. ``encode_video`` (one segment
+ the concat) makes a whole clip in one call. ``probe`` reads codec names, size and duration from
``ffmpeg -i`` and counts frames/samples by decoding (imageio-ffmpeg ships no ffprobe); ``count_frames``
counts packets without decoding; ``decode_frames`` returns decoded RGB frames; ``contact_sheet`` makes a JPEG preview grid.
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
# Keyframe interval inside a segment (10 s at 25 fps): a segment is at most a render chunk or an
# enhancement range, so most segments hold a single GOP; longer ones get a seek point every 10 s.
GOP_FRAMES = 250
# The one encoder configuration of every segment. -bf 0: with B-frames x264 delays the first PTS by two
# frames, which would shift the video against the audio in the stream; no B-frames costs some bitrate
# (the CRF keeps the quality). -sc_threshold 0: keyframes only where GOP_FRAMES puts them.
X264_ARGS = ("-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", "-profile:v", "high",
             "-g", str(GOP_FRAMES), "-keyint_min", str(GOP_FRAMES), "-sc_threshold", "0", "-bf", "0")


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


def encode_segment(frames: Iterable[np.ndarray], out_path: str | os.PathLike, first_frame: int,
                   fps: int = FPS) -> VideoInfo:
    """Encode RGB uint8 frames (clip indices first_frame, first_frame + 1, ...) as one H.264 MPEG-TS segment."""
    if first_frame < 0:
        raise ValueError(f"first_frame must be >= 0, got {first_frame}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    exe = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix=".seg-", dir=out_path.parent) as tmp:
        tmp_out = Path(tmp) / "segment.ts"
        log_path = Path(tmp) / "encode.log"
        proc = None
        count, shape = 0, None
        try:
            for frame in frames:
                frame = even_frame(np.asarray(frame))
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
                if proc is None:
                    shape = frame.shape
                    args = [
                        exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{shape[1]}x{shape[0]}", "-r", str(fps), "-i", "pipe:0", "-an", *X264_ARGS,
                        # the segment's place in the clip; no mux delay, so PTS = clip frame index / fps
                        "-output_ts_offset", f"{first_frame / fps:.6f}", "-muxdelay", "0", "-muxpreload", "0",
                        "-f", "mpegts", str(tmp_out),
                    ]  # fmt: skip
                    # stderr to a file: a full pipe would block ffmpeg while we block writing frames
                    errlog = open(log_path, "wb")  # noqa: SIM115 - closed below
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
            err = log_path.read_text(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed to encode the frames: {err[-300:]}")
        os.replace(tmp_out, out_path)
    assert shape is not None
    return VideoInfo(str(out_path), count, shape[1], shape[0], fps, count / fps, 0)


def _concat_line(path: Path) -> str:
    # the concat demuxer's quoting: inside single quotes, a quote is written '\''
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'\n"


def concat_segments(segment_paths: Sequence[str | os.PathLike], wav_16k: np.ndarray | None, num_frames: int,
                    out_path: str | os.PathLike, fps: int = FPS) -> VideoInfo:
    """Join segments (in order) into one MP4 without re-encoding the video; AAC audio of exactly
    num_frames / fps seconds (none when ``wav_16k`` is None); +faststart."""
    if not segment_paths:
        raise ValueError("no segments to concatenate")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    exe = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix=".cat-", dir=out_path.parent) as tmp:
        listing = Path(tmp) / "segments.txt"
        listing.write_text("".join(_concat_line(Path(p)) for p in segment_paths))
        args = [exe, "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
        samples = 0
        if wav_16k is not None:
            audio = fit_audio(wav_16k, num_frames, fps)
            samples = len(audio)
            raw = Path(tmp) / "audio.f32"
            audio.astype("<f4").tofile(raw)
            args += ["-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "1", "-i", str(raw), "-map", "0:v:0", "-map", "1:a:0",
                     "-c:a", "aac", "-b:a", "128k"]
        tmp_out = Path(tmp) / ("out" + out_path.suffix)
        args += ["-c:v", "copy", "-movflags", "+faststart", str(tmp_out)]
        _run(args, "concatenate the segments")
        os.replace(tmp_out, out_path)
    width, height = _video_size(out_path)
    return VideoInfo(str(out_path), num_frames, width, height, fps, num_frames / fps, samples)


def encode_video(frames: Iterable[np.ndarray], wav_16k: np.ndarray | None, out_path: str | os.PathLike,
                 fps: int = FPS) -> VideoInfo:
    """A whole clip in one call: one segment, then the concat with its audio. Returns what was written."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".enc-", dir=out_path.parent) as tmp:
        seg = encode_segment(frames, Path(tmp) / "all.ts", 0, fps)
        info = concat_segments([seg.path], wav_16k, seg.frames, out_path, fps)
    return info


def _video_size(path: str | os.PathLike) -> tuple[int, int]:
    header = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", str(path)], capture_output=True).stderr.decode(errors="replace")
    m = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})", header)
    if not m:
        raise RuntimeError(f"{path} has no video stream")
    return int(m.group(1)), int(m.group(2))


def count_frames(path: str | os.PathLike) -> int:
    """Frames of the video stream, counted from its packets (no decoding)."""
    proc = _run([ffmpeg_exe(), "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                "count the frames")
    counts = re.findall(r"frame=\s*(\d+)", proc.stderr.decode(errors="replace"))
    return int(counts[-1]) if counts else 0


def decode_frames(path: str | os.PathLike, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decoded RGB uint8 frames (N, H, W, 3) of the video stream: all of them, or those at ``indices``
    (ascending frame numbers of the decoded stream)."""
    width, height = _video_size(path)
    args = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0"]
    if indices is not None:
        picks = sorted(set(int(i) for i in indices))
        if not picks:
            return np.zeros((0, height, width, 3), np.uint8)
        args += ["-vf", "select='" + "+".join(f"eq(n\\,{i})" for i in picks) + "'"]
    # passthrough: one output frame per decoded frame (the default may duplicate or drop to keep a rate)
    args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = _run(args, "decode the frames").stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


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

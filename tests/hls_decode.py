"""Decoding an HLS presentation the way a player would (tests of the job's stream)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from sadtalker.audio.decode import ffmpeg_exe


def decode_stream(playlist: Path, live: bool, h: int, w: int) -> tuple[np.ndarray, float]:
    """(RGB frames, seconds of audio) of an HLS presentation on disk. An EVENT playlist without #EXT-X-ENDLIST
    makes ffmpeg wait for more segments: start at its first segment and give up after two unchanged reloads."""
    opts = ["-live_start_index", "0", "-m3u8_hold_counters", "2"] if live else []
    video, audio = playlist.parent / "decoded.rgb", playlist.parent / "decoded.s16"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", *opts, "-i", str(playlist),
                    "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", str(video),
                    "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", str(audio)],
                   capture_output=True, check=True, timeout=300)
    return np.frombuffer(video.read_bytes(), np.uint8).reshape(-1, h, w, 3), audio.stat().st_size / 2 / 48000

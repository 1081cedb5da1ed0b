"""The job's HLS stream: the video while it renders, playable from its first finished segment.

Layout (keys in ``JobKeys``)::

    outputs/<job>/stream.m3u8          master playlist: one video variant + one AAC audio rendition
    outputs/<job>/stream/video.m3u8    EVENT playlist: the finished PREFIX of the plan's segments
    outputs/<job>/stream/audio.m3u8    EVENT playlist: the audio segments covering that prefix
    work/<job>/stream-audio/audio.json index of the AAC segments (AudioFeatures)
    work/<job>/stream-audio/audio-NNNNN.ts
    work/<job>/segments/<s>-<e>.ts     the video segments themselves (RenderChunk / the enhance task)

The media parts live under work/: AudioFeatures runs beside Preprocess and may finish after a failed
Preprocess was recorded, and a failed job's outputs/ holds only error.json.

Lifecycle:

* ``write_audio`` (AudioFeatures): the speech is known before anything renders, so its AAC segments are made
  once, from the waveform fitted to exactly num_frames / 25 s, cut every ``AUDIO_SEGMENT_S`` by ffmpeg's
  segment muxer from ONE encode (separately encoded pieces would each carry their own priming silence).
  Their timestamps start at 0 without mux delay, like the video segments' (``video.encode_segment``), so
  the renditions line up. Nothing is playable yet: no playlist is written.
* ``publish_stream`` (after a segment is written): lists which of the plan's segments exist and writes
  the audio playlist, then the video playlist, then the master, for the consecutive finished prefix. A
  reader who sees the master finds both media playlists (written before it).
* ``close_stream`` (Finalize, before result.json): every segment, #EXT-X-ENDLIST on both playlists.
* ``fail_stream`` (RecordFailure): removes the master first (no new reader starts), then the rest.

Concurrent publishers (chunks finish at the same time) race on the same objects; S3 offers no
compare-and-swap here. What is guaranteed: a publisher writes only when its prefix is LONGER than the
one stored (a late, shorter write can only win inside the few milliseconds between that read and its
write), and after writing it lists and reads again, rewriting until what is stored covers every segment
it saw: the last publisher to finish leaves the longest prefix stored (its final listing happens after
every earlier segment was written, and S3 lists consistently after a write). A closed playlist is never
rewritten, and a publisher that finds the job's error.json after its write removes the stream it may
just have re-created (RecordFailure writes error.json before it removes the stream, so one of the two
removals sees the other's write).

URIs: on AWS the objects are private, so a playlist names each object by a presigned URL
(``Storage.link``: the writing function's role signs; the URL dies at the earlier of
``SADTALKER_LINK_EXPIRY_S`` and the end of that role's session). Every publish re-signs everything it
lists, and Finalize re-signs the closed playlists with its own session. A storage without links (a
directory, tests) gets URIs relative to the playlist, so the tree on disk is a playable stream.
"""

from __future__ import annotations

import csv
import json
import math
import posixpath
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio.decode import ffmpeg_exe
from .audio.features import FPS, SAMPLE_RATE
from .errors import InvalidChunk
from .jobs import JobKeys
from .stages.plan_chunks import ChunkPlan
from .storage import Storage
from .video import fit_audio

AUDIO_SEGMENT_S = 4  # the audio rendition's segment length (the last one is shorter)
AUDIO_STREAM_RATE = 48000  # players' native AAC rate; the pipeline's 16 kHz is resampled once, here
AUDIO_BITRATE = 128_000
GROUP = "speech"  # the audio rendition group of the master playlist
# Rounds of "list, compare, write" one publish makes at most: each extra round means another segment
# finished (or another publisher wrote) meanwhile; segments are few, this only bounds a pathological race.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class AudioPart:
    key: str
    start: float  # seconds of the stream
    end: float


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"ffmpeg failed to {what}: {' | '.join(tail)}")


# --- AudioFeatures -------------------------------------------------------------------------------------
def write_audio(storage: Storage, job: JobKeys, wav_16k: np.ndarray, num_frames: int) -> list[AudioPart]:
    """The stream's AAC segments and their index, from the waveform fitted to num_frames / 25 s."""
    audio = fit_audio(wav_16k, num_frames)
    with tempfile.TemporaryDirectory(prefix="sadtalker-hls-") as tmp:
        raw, listing = Path(tmp) / "audio.f32", Path(tmp) / "parts.csv"
        audio.astype("<f4").tofile(raw)
        _run([ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
              "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", str(raw),
              "-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ar", str(AUDIO_STREAM_RATE),
              # timestamps from 0 like the video segments' (no mpegts mux delay)
              "-muxdelay", "0", "-muxpreload", "0",
              "-f", "segment", "-segment_time", str(AUDIO_SEGMENT_S), "-segment_format", "mpegts",
              "-segment_list", str(listing), "-segment_list_type", "csv",
              str(Path(tmp) / "part-%05d.ts")], "encode the stream's audio")  # fmt: skip
        with open(listing, newline="") as fh:
            rows = [(name, float(start), float(end)) for name, start, end in csv.reader(fh)]
        parts = []
        for i, (name, start, end) in enumerate(rows):
            key = job.stream_audio_segment(i)
            storage.put(key, (Path(tmp) / name).read_bytes())
            parts.append(AudioPart(key, start, end))
    index = {"seconds": num_frames / FPS, "parts": [p.__dict__ for p in parts]}
    storage.put(job.stream_audio_index, json.dumps(index).encode())
    return parts


def read_audio_index(storage: Storage, job: JobKeys) -> list[AudioPart]:
    body = json.loads(storage.require(job.stream_audio_index, "stream's audio index"))
    return [AudioPart(**p) for p in body["parts"]]


# --- playlists -----------------------------------------------------------------------------------------
def _uri(storage: Storage, key: str, playlist: str) -> str:
    return storage.link(key) or posixpath.relpath(key, posixpath.dirname(playlist))


def _media_playlist(storage: Storage, playlist: str, entries: list[tuple[str, float]], target: int,
                    closed: bool) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-PLAYLIST-TYPE:EVENT", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for key, seconds in entries:
        lines += [f"#EXTINF:{seconds:.3f},", _uri(storage, key, playlist)]
    if closed:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def _master_playlist(storage: Storage, job: JobKeys, bandwidth: int) -> bytes:
    # No CODECS attribute: the H.264 level x264 picks depends on the frame size; a wrong CODECS makes
    # players refuse the variant, a missing one makes them probe the first segment.
    audio = _uri(storage, job.stream_audio, job.stream)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
             f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{GROUP}",NAME="{GROUP}",DEFAULT=YES,AUTOSELECT=YES,URI="{audio}"',
             f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AUDIO="{GROUP}"',
             _uri(storage, job.stream_video, job.stream)]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Stored:
    """What a media playlist in storage shows: its entries and whether it is closed."""

    entries: int
    closed: bool
    bandwidth: int = 0


def _stored(storage: Storage, job: JobKeys) -> Stored:
    try:
        text = storage.get(job.stream_video).decode(errors="replace")
    except KeyError:
        return Stored(0, False)
    bandwidth = 0
    try:
        for line in storage.get(job.stream).decode(errors="replace").splitlines():
            if line.startswith("#EXT-X-STREAM-INF:"):
                bandwidth = int(line.split("BANDWIDTH=")[1].split(",")[0])
    except (KeyError, IndexError, ValueError):
        pass
    return Stored(text.count("#EXTINF:"), "#EXT-X-ENDLIST" in text, bandwidth)


def finished_prefix(storage: Storage, job: JobKeys, plan: ChunkPlan) -> list[dict[str, int]]:
    """The plan's segments, in order, up to the first one that is not written yet."""
    written = set(storage.list(job.segments))
    prefix = []
    for seg in plan.segments:
        if job.segment(seg["start"], seg["end"]) not in written:
            break
        prefix.append(seg)
    return prefix


def _write(storage: Storage, job: JobKeys, plan: ChunkPlan, prefix: list[dict[str, int]], stored: Stored,
           closed: bool) -> None:
    target = max(1, math.ceil(max((s["end"] - s["start"]) / FPS for s in plan.segments)))
    end_s = prefix[-1]["end"] / FPS
    parts = read_audio_index(storage, job)
    audio = parts if closed else [p for p in parts if p.start < end_s]
    audio_target = max(1, math.ceil(max(p.end - p.start for p in parts)))
    # BANDWIDTH: the peak bit rate of the video segments published so far (sizes of the new ones only;
    # the stored master carries the peak of the earlier ones) plus the audio's.
    new = prefix[stored.entries:] if not stored.closed else prefix
    video_peak = max((storage.size(job.segment(s["start"], s["end"])) * 8 * FPS / (s["end"] - s["start"])
                      for s in new), default=0)
    bandwidth = max(stored.bandwidth, math.ceil(video_peak * 1.1) + AUDIO_BITRATE)
    storage.put(job.stream_audio, _media_playlist(
        storage, job.stream_audio, [(p.key, p.end - p.start) for p in audio], audio_target, closed))
    storage.put(job.stream_video, _media_playlist(
        storage, job.stream_video, [(job.segment(s["start"], s["end"]), (s["end"] - s["start"]) / FPS)
                                    for s in prefix], target, closed))
    storage.put(job.stream, _master_playlist(storage, job, bandwidth))


def publish_stream(storage: Storage, job: JobKeys, plan: ChunkPlan | None = None) -> int:
    """Publish the finished prefix of the plan's segments; returns how many segments the stream lists
    (0: none finished yet, nothing written). Idempotent; see the module docstring for races."""
    plan = plan or ChunkPlan.read(storage, job)
    shown = 0
    for _ in range(MAX_ROUNDS):
        prefix = finished_prefix(storage, job, plan)
        stored = _stored(storage, job)
        shown = stored.entries
        if stored.closed or len(prefix) <= stored.entries:
            break
        _write(storage, job, plan, prefix, stored, closed=False)
        shown = len(prefix)
    if shown and storage.exists(job.error):  # the job failed meanwhile: no stream may outlive it
        fail_stream(storage, job)
        return 0
    return shown


def close_stream(storage: Storage, job: JobKeys, plan: ChunkPlan | None = None) -> int:
    """Every segment of the plan, closed (#EXT-X-ENDLIST): the stream becomes a complete VOD presentation."""
    plan = plan or ChunkPlan.read(storage, job)
    prefix = finished_prefix(storage, job, plan)
    if len(prefix) != len(plan.segments):
        missing = plan.segments[len(prefix)]
        raise InvalidChunk(f"the stream cannot be closed: segment {job.segment(missing['start'], missing['end'])} "
                           "is missing")
    _write(storage, job, plan, prefix, _stored(storage, job), closed=True)
    return len(prefix)


def fail_stream(storage: Storage, job: JobKeys) -> None:
    """Remove the stream of a failed job: the master first, so no player starts on what is left."""
    storage.delete(job.stream)
    for key in storage.list(job.stream_parts):
        storage.delete(key)

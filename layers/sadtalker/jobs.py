"""The storage layout of one job: every artefact's key, in one place.

``inbox/<job>/`` holds what the user dropped (never modified), ``work/<job>/`` the intermediates
(lifecycle-expired on AWS), ``outputs/<job>/`` the results.

``JobKeys.any()`` spells the same keys for every job (``work/*/coeffs.npz``): the IAM resource globs of
each stage's role (functions/contract.py) are derived from it, so a key and its permission cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InvalidInput, InvalidParams
from .params import JobParams

INBOX, WORK, OUTPUTS = "inbox/", "work/", "outputs/"
ANY_JOB = "*"  # the job-id segment of an IAM glob
RENDER_CHUNK = "render_chunk"  # timing records of chunks: render_chunk-<start>-<end>
ENHANCE_RANGE = "enhance_range"  # timing records of enhancement ranges: enhance_range-<start>-<end>

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")


def new_job_id(image: str | os.PathLike) -> str:
    """A fresh job id named after the photo: ``<stem>-<UTC time>-<4 hex>`` (execution names are unique)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(image).stem).strip("-_")[:40] or "job"
    if not stem[0].isalnum():
        stem = "job-" + stem
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return check_job_id(f"{stem}-{stamp}-{secrets.token_hex(2)}")


def check_job_id(job_id: str) -> str:
    """Job ids double as Step Functions execution names and key segments: 1-80 safe characters."""
    if not JOB_ID_RE.match(job_id or ""):
        raise InvalidInput(
            f"job id {job_id!r} is not valid: use 1-80 letters, digits, '-' or '_' (starting with a letter or digit)"
        )
    return job_id


@dataclass(frozen=True)
class JobKeys:
    job_id: str

    def __post_init__(self) -> None:
        if self.job_id != ANY_JOB:
            check_job_id(self.job_id)

    @classmethod
    def any(cls) -> JobKeys:
        """The keys of every job at once (``*`` as the job id): the form IAM resource globs take."""
        return cls(ANY_JOB)

    @staticmethod
    def job_of_inbox_key(key: str) -> str | None:
        """``inbox/<job>/<file>`` -> ``<job>`` (a valid job id), else None."""
        if not key.startswith(INBOX):
            return None
        parts = key[len(INBOX):].split("/")
        if len(parts) != 2 or not parts[1] or not JOB_ID_RE.match(parts[0]):
            return None
        return parts[0]

    # --- inbox/ --------------------------------------------------------------------------------------
    @property
    def inbox(self) -> str:
        """What the user dropped for this job (S3-drop jobs); never modified by the pipeline."""
        return f"{INBOX}{self.job_id}/"

    @property
    def params_file(self) -> str:
        """The optional ``params.json`` of an S3-drop job."""
        return self.inbox + "params.json"

    # --- work/ ---------------------------------------------------------------------------------------
    @property
    def work(self) -> str:
        return f"{WORK}{self.job_id}/"

    @property
    def record(self) -> str:
        """ValidateJob output: the job's validated inputs and parameters (JSON); later stages read it."""
        return self.work + "job.json"

    @property
    def plan(self) -> str:
        """PlanChunks output: the one chunk plan every later state reads (JSON)."""
        return self.work + "plan.json"

    @property
    def chunk_items(self) -> str:
        """PlanChunks output: the render chunks as a JSON array of ``{start, end}``, the items the
        RenderChunks Distributed Map reads (ItemReader), so no state data grows with the clip."""
        return self.work + "chunk-items.json"

    @property
    def range_items(self) -> str:
        """PlanChunks output: the enhancement ranges as a JSON array of ``{start, end}`` (empty without an
        enhancer), the items of the EnhanceRanges fan-out."""
        return self.work + "range-items.json"

    @property
    def map_results(self) -> str:
        """Prefix under which the RenderChunks Distributed Map writes its results (ResultWriter)."""
        return self.work + "map-results/"

    @property
    def timings(self) -> str:
        """Prefix of the stages' timing records (one JSON each)."""
        return self.work + "timings/"

    def timing(self, name: str) -> str:
        """The timing record of one stage run (``render_chunk-000000-000025`` for a chunk)."""
        return f"{self.timings}{name}.json"

    @property
    def chunks(self) -> str:
        """Prefix of the rendered chunks."""
        return self.work + "chunks/"

    @property
    def partial_video(self) -> str:
        """Finalize's video before it is copied to outputs/ in one step."""
        return self.work + "video.partial.mp4"

    @property
    def original_image(self) -> str:
        """The decoded source photo (RGB PNG), the canvas of paste-back."""
        return self.work + "original.png"

    @property
    def source_image(self) -> str:
        """The size x size face crop the renderer animates (lossless PNG)."""
        return self.work + "source.png"

    @property
    def face(self) -> str:
        """Preprocess output: first coefficients, crop info, landmarks (npz)."""
        return self.work + "face.npz"

    @property
    def audio(self) -> str:
        """AudioFeatures output: 16 kHz waveform, mel windows, frame count (npz)."""
        return self.work + "audio.npz"

    @property
    def coeffs(self) -> str:
        """Audio2Coeff output: the per-frame 70-d coefficient sequence (npz)."""
        return self.work + "coeffs.npz"

    def ref_coeffs(self, kind: str) -> str:
        """Per-frame coefficients of a reference video (npz); kind is "pose" or "eyeblink"."""
        if kind not in ("pose", "eyeblink"):
            raise ValueError(f"reference kind must be 'pose' or 'eyeblink', got {kind!r}")
        return f"{self.work}ref_{kind}.npz"

    def chunk(self, start: int, end: int) -> str:
        """Rendered frames [start, end) as lossless uint8 arrays (npz)."""
        return self.chunks + f"{start:06d}-{end:06d}.npz"

    @property
    def segments(self) -> str:
        """Prefix of the encoded video segments (one per render chunk, or per enhancement range)."""
        return self.work + "segments/"

    def segment(self, start: int, end: int) -> str:
        """Frames [start, end) after paste-back (and enhancement) as one H.264 MPEG-TS segment that starts
        on a keyframe; the final video and the stream are these segments, never re-encoded."""
        return self.segments + f"{start:06d}-{end:06d}.ts"

    @property
    def range_errors(self) -> str:
        """Prefix of the enhancement tasks' error records."""
        return self.work + "range-errors/"

    def range_error(self, start: int, end: int) -> str:
        """The named error an enhancement task of frames [start, end) recorded before exiting 0 (JSON
        ``{error, message}``); Finalize raises it by name."""
        return self.range_errors + f"{start:06d}-{end:06d}.json"

    @staticmethod
    def chunk_name(start: int, end: int) -> str:
        """A render chunk's name in timing records and messages."""
        return f"{RENDER_CHUNK}-{start:06d}-{end:06d}"

    @staticmethod
    def range_name(start: int, end: int) -> str:
        """An enhancement range's name in timing records and messages."""
        return f"{ENHANCE_RANGE}-{start:06d}-{end:06d}"

    # --- outputs/ ------------------------------------------------------------------------------------
    @property
    def outputs(self) -> str:
        return f"{OUTPUTS}{self.job_id}/"

    @property
    def video(self) -> str:
        return self.outputs + "video.mp4"

    @property
    def preview(self) -> str:
        return self.outputs + "preview.jpg"

    @property
    def result(self) -> str:
        return self.outputs + "result.json"

    @property
    def error(self) -> str:
        return self.outputs + "error.json"

    @property
    def stream(self) -> str:
        """The HLS playlist of the video while it renders (finished prefix; closed when the job succeeds)."""
        return self.outputs + "stream.m3u8"

    @property
    def stream_parts(self) -> str:
        """Prefix of the stream's other playlists and its audio (``outputs/<job>/stream/``)."""
        return self.outputs + "stream/"

    @property
    def stream_video(self) -> str:
        """The stream's video media playlist (the finished prefix of the plan's segments)."""
        return self.stream_parts + "video.m3u8"

    @property
    def stream_audio(self) -> str:
        """The stream's audio media playlist (the AAC rendition)."""
        return self.stream_parts + "audio.m3u8"

    @property
    def stream_audio_parts(self) -> str:
        """Prefix of the stream's AAC segments and their index. Under work/, like the video segments:
        AudioFeatures writes them while Preprocess may still fail, and a failed job's outputs/ must hold
        only error.json (RecordFailure may have cleaned up before AudioFeatures finished)."""
        return self.work + "stream-audio/"

    @property
    def stream_audio_index(self) -> str:
        """AudioFeatures output: the AAC segments of the stream and their times (JSON)."""
        return self.stream_audio_parts + "audio.json"

    def stream_audio_segment(self, index: int) -> str:
        """One AAC segment (MPEG-TS) of the stream's audio rendition."""
        return self.stream_audio_parts + f"audio-{index:05d}.ts"

    @property
    def results(self) -> tuple[str, str, str]:
        """What a successful job publishes, result.json first: removing them in this order never leaves a
        result.json without its video."""
        return (self.result, self.video, self.preview)


@dataclass(frozen=True)
class JobRecord:
    """What ValidateJob established, written once to ``JobKeys.record``: later stages (the Fargate task
    above all, which receives only the job id) read the validated parameters here instead of being
    handed them again."""

    job_id: str
    bucket: str
    image_key: str
    audio_key: str
    params: JobParams
    seed: int

    def to_json(self) -> bytes:
        body: dict[str, Any] = dict(self.__dict__, params=json.loads(self.params.to_json()))
        return json.dumps(body, indent=2).encode()

    @classmethod
    def read(cls, storage: Any, job: JobKeys) -> JobRecord:
        try:
            body = json.loads(storage.get(job.record))
        except KeyError:
            raise InvalidInput(f"the job record {job.record} is missing: ValidateJob did not run for this job") from None
        except ValueError:
            raise InvalidParams(f"the job record {job.record} is not valid JSON") from None
        return cls(**dict(body, params=JobParams.load(body["params"])))

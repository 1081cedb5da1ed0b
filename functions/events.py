"""Event and result models of every handler (pydantic; light: no torch, no boto3).

Inputs ignore nothing: unknown fields are errors, so a mismatch between the ASL and a handler fails
loudly in tests instead of silently dropping data. Results are checked the same way on the way out
(functions/common.py ``stage_handler``): a stage that returns what its model does not declare fails in
every test run, not in the ASL's ResultSelector on AWS.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sadtalker.errors import InvalidInput
from sadtalker.params import JobParams


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def parse(cls, event: Any):
        try:
            return cls.model_validate(event)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            raise InvalidInput(f"malformed {cls.__name__} event: {where}: {first['msg']}") from None


class StageResult(Model):
    """What every stage returns besides its own fields: its wall time (set by the decorator) and the
    stage's own breakdown (``timings``, seconds; model-load time is ``model_load_s`` everywhere)."""

    handler_seconds: float = 0.0
    timings: dict[str, Any] = Field(default_factory=dict)


class JobRef(Model):
    """What every stage after ValidateJob receives: the job, its bucket and its parameters."""

    job_id: str
    bucket: str
    params: dict[str, Any] = Field(default_factory=dict)

    def job_params(self) -> JobParams:
        return JobParams.load(self.params)


# --- ValidateJob ----------------------------------------------------------------------------------
class ValidateJobEvent(Model):
    job_id: str
    input: Any
    max_concurrency: int  # the render Map's MaxConcurrency (0 = no limit): the quote's waves


class ValidateJobResult(StageResult):
    job_id: str
    bucket: str
    image_key: str
    audio_key: str
    params: dict[str, Any]
    seed: int
    image: dict[str, Any]
    audio: dict[str, Any]
    record_key: str
    quote: dict[str, Any] | None = None  # sadtalker.pricing.Quote; None when the header omits the length


# --- Preprocess / AudioFeatures / Audio2Coeff -------------------------------------------------------
class PreprocessEvent(JobRef):
    image_key: str


class AudioFeaturesEvent(JobRef):
    audio_key: str


class PreprocessResult(StageResult):
    face_key: str
    source_image_key: str
    original_image_key: str
    ref_coeffs_keys: dict[str, str]
    ref_frames: dict[str, int]
    ref_filled_frames: dict[str, int]
    num_faces: int
    face_index: int  # the chosen face's number, left to right from 0
    source_frame: int  # the frame of a video/GIF source that was animated (0 for a photo)
    landmarks: str
    landmarks_on_crop: bool
    image_size: list[int]
    crop: dict[str, Any]


class AudioFeaturesResult(StageResult):
    audio_key: str
    num_frames: int
    seconds: float


class Audio2CoeffEvent(JobRef):
    pass


class Audio2CoeffResult(StageResult):
    coeffs_key: str
    num_frames: int
    cached: bool


# --- PlanChunks / RenderChunk ------------------------------------------------------------------------
class PlanChunksEvent(JobRef):
    num_frames: int
    max_concurrency: int  # the Map's MaxConcurrency (0 = no limit), from the state data


class PlanChunksResult(StageResult):
    plan_key: str
    chunk_items: str  # the render chunks as a JSON array (the RenderChunks Map's ItemReader)
    range_items: str  # the enhancement ranges as a JSON array ([] without an enhancer)
    num_chunks: int
    num_ranges: int
    num_frames: int
    chunk_frames: int
    projected_s: dict[str, float]  # render waves, enhancement, finalize, whole job: what admission checked
    quote: dict[str, Any]  # sadtalker.pricing.Quote of the decoded frame count


class RenderChunkEvent(JobRef):
    start: int
    end: int


class RenderChunkResult(StageResult):
    key: str  # the chunk's video segment, or its lossless frames when an enhancement range follows
    start: int
    end: int
    frames: int
    precision: str


# --- Finalize / CheckResult ---------------------------------------------------------------------------
class FinalizeEvent(Model):
    """The params and the plan are read from the job record and plan objects, never passed again."""

    job_id: str
    bucket: str


class FinalizeResult(StageResult):
    video_key: str
    result_key: str
    frames: int


class CheckResultEvent(Model):
    job_id: str
    bucket: str


class CheckResultOutput(StageResult):
    job_id: str
    video: str
    result: str
    preview: str
    frames: int
    synthetic: bool


# --- RecordFailure --------------------------------------------------------------------------------
class CaughtError(Model):
    """What a Catch puts at ResultPath: Step Functions' ``{"Error", "Cause"}``."""

    Error: str
    Cause: str | None = None


class RecordFailureEvent(Model):
    job_id: str
    error: CaughtError
    data: dict[str, Any] = Field(default_factory=dict)


class FailureRecord(Model):
    """The body of error.json (with the job id)."""

    error: str
    message: str
    state: str


class RecordFailureResult(StageResult):
    error: str
    message: str
    state: str
    error_key: str | None = None

"""Event models in and out of every handler (pydantic; light: no torch, no boto3).

Inputs ignore nothing: unknown fields are errors, so a mismatch between the ASL and a handler fails
loudly in tests instead of silently dropping data.
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


class ValidateJobResult(Model):
    job_id: str
    bucket: str
    image_key: str
    audio_key: str
    params: dict[str, Any]
    seed: int
    image: dict[str, Any]
    audio: dict[str, Any]


# --- Preprocess / AudioFeatures / Audio2Coeff -------------------------------------------------------
class PreprocessEvent(JobRef):
    image_key: str


class AudioFeaturesEvent(JobRef):
    audio_key: str


class Audio2CoeffEvent(JobRef):
    pass


# --- PlanChunks / RenderChunk ------------------------------------------------------------------------
class PlanChunksEvent(Model):
    job_id: str
    num_frames: int
    params: dict[str, Any] = Field(default_factory=dict)


class Chunk(Model):
    start: int
    end: int


class PlanChunksResult(Model):
    chunks: list[Chunk]
    num_chunks: int
    num_frames: int


class RenderChunkEvent(JobRef):
    start: int
    end: int


class RenderChunkResult(Model):
    model_config = ConfigDict(extra="allow")
    key: str
    start: int
    end: int
    frames: int


# --- Finalize / CheckResult ---------------------------------------------------------------------------
class FinalizeEvent(JobRef):
    num_frames: int


class CheckResultEvent(Model):
    """``containers``: the ECS task's containers (``[]`` after the Lambda finalize)."""

    job_id: str
    bucket: str
    containers: list[dict[str, Any]] = Field(default_factory=list)
    stopped_reason: str | None = None

    @property
    def exit_code(self) -> int | None:
        """The first non-zero container exit code, 0 if all exited 0, None if no container reported one."""
        codes = [c.get("ExitCode", c.get("exitCode")) for c in self.containers]
        codes = [int(c) for c in codes if isinstance(c, int)]
        if not codes:
            return None if self.containers else 0
        return next((c for c in codes if c != 0), 0)


class CheckResultOutput(Model):
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
    error: str
    message: str
    state: str

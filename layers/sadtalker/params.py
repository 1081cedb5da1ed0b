"""Job parameters: the seed project's ModelParams (same names and defaults) plus our own.

``JobParams.load(obj)`` accepts a dict, a JSON string/bytes or a path to a JSON file; every problem is
raised as ``InvalidParams`` naming the field, the value given and what is allowed. Unknown keys are
rejected. ``to_json()`` / ``load()`` round-trip.

Decisions where the seed is silent: ``device`` only accepts "cpu" (this system has no GPU path);
``net_recon`` only "resnet50" and ``use_last_fc`` only False (the only configuration the official
checkpoints ship); ``bfm_*``, ``focal``, ``center``, ``camera_d``, ``z_near``, ``z_far`` are kept for
compatibility but are not used at inference (they configure the 3DMM renderer of training).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidParams
from .notification import MAX_URL_LENGTH, check_url

MAX_PARAMS_BYTES = 64 * 1024
_TOO_LARGE = f"params are more than {MAX_PARAMS_BYTES} bytes; at most {MAX_PARAMS_BYTES} bytes are allowed"

class JobParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # --- the seed's ModelParams -----------------------------------------------------------------
    ref_pose: str | None = Field(None, description="reference video for head pose (key or path)")
    ref_eyeblink: str | None = Field(None, description="reference video for eye blinks (key or path)")
    result_dir: str = Field("results", description="output folder of the seed CLI (kept for compatibility)")
    pose_style: int = Field(0, ge=0, le=45, description="audio2pose style class")
    batch_size: int = Field(2, ge=1, le=16, description="frames rendered together")
    expression_scale: float = Field(1.0, ge=0.0, le=5.0, description="multiplies the predicted expression")
    input_yaw: list[int] = Field([0], min_length=1, max_length=64, description="yaw degrees, interpolated")
    input_pitch: list[int] = Field([0], min_length=1, max_length=64, description="pitch degrees, interpolated")
    input_roll: list[int] = Field([0], min_length=1, max_length=64, description="roll degrees, interpolated")
    enhancer: Literal["", "gfpgan"] = Field("", description="face enhancer")
    background_enhancer: Literal["", "realesrgan"] = Field(
        "realesrgan", description="background upsampler, used only together with an enhancer"
    )
    device: Literal["cpu"] = Field("cpu", description="only cpu")
    still: bool = Field(True, description="keep the source head pose (fewer head motions)")
    preprocess: Literal["crop", "extcrop", "resize", "full", "extfull"] = Field("crop", description="crop mode")
    net_recon: Literal["resnet50"] = Field("resnet50", description="3DMM regressor")
    use_last_fc: Literal[False] = Field(False, description="must be false")
    focal: float = Field(1015.0, gt=0, le=10000, description="unused at inference")
    center: float = Field(112.0, gt=0, le=1000, description="unused at inference")
    camera_d: float = Field(10.0, gt=0, le=100, description="unused at inference")
    z_near: float = Field(5.0, gt=0, le=100, description="unused at inference")
    z_far: float = Field(15.0, gt=0, le=1000, description="unused at inference")
    bfm_folder: str = Field("./checkpoints/BFM_Fitting/", description="unused at inference")
    bfm_model: str = Field("BFM_model_front.mat", description="unused at inference")
    checkpoint_dir: str = Field("./checkpoints", description="seed's weights folder (ours: the model store)")
    # --- ours -----------------------------------------------------------------------------------
    size: Literal[256, 512] = Field(256, description="face render size")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="blink/pose randomness; default from job id")
    chunk_frames: int | None = Field(
        None, ge=1, le=500,
        description="frames per render chunk; default: chosen from the measured render cost (one Map wave)",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="render and enhancer arithmetic: bf16 = convolutions in bfloat16 on CPUs with native bf16 "
        "(AVX512_BF16/AMX), not bit-exact; elsewhere it falls back to fp32",
    )
    max_audio_seconds: float = Field(300.0, gt=0, le=3600, description="longest accepted speech")
    max_cost_usd: float | None = Field(
        None, gt=0, le=1000,
        description="refuse the job before anything is rendered when its quote (cold containers) is above "
        "this many US dollars (`sadtalker quote` prints it)",
    )
    landmarks: Literal["auto", "dlib", "face_alignment"] = Field(
        "auto", description="face landmark backend; auto = face_alignment when its weights are present, else dlib"
    )
    notify_url: str | None = Field(
        None, max_length=MAX_URL_LENGTH,
        description="https URL POSTed once when the job ends (the notification body, HMAC-signed); "
        "private, loopback and link-local addresses are refused",
    )
    face_index: int | None = Field(
        None, ge=0, le=99,
        description="which face to animate when the picture shows several, numbered left to right from 0 "
        "(`sadtalker preview-crop` draws the numbers); default: the largest face",
    )
    use_blink: bool = Field(True, description="random eye blinks (the official demo's toggle)")
    length_of_audio: float | None = Field(
        None, ge=0.04, le=3600,
        description="idle mode: animate this many seconds without speech (the job takes no speech file)",
    )

    @model_validator(mode="after")
    def _idle_length(self) -> JobParams:
        if self.length_of_audio is not None and self.length_of_audio > self.max_audio_seconds:
            raise ValueError(
                f"length_of_audio = {self.length_of_audio} s is longer than max_audio_seconds = "
                f"{self.max_audio_seconds} s (the longest clip a job may make)"
            )
        return self

    @property
    def idle(self) -> bool:
        """Idle mode: no speech, ``length_of_audio`` seconds of a silent face."""
        return self.length_of_audio is not None

    @field_validator("input_yaw", "input_pitch", "input_roll")
    @classmethod
    def _degrees(cls, v: list[int]) -> list[int]:
        for d in v:
            if not -90 <= d <= 90:
                raise ValueError(f"each angle must be between -90 and 90 degrees, got {d}")
        return v

    @field_validator("notify_url")
    @classmethod
    def _notify_url(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                check_url(v)
            except InvalidParams as exc:
                raise ValueError(str(exc)) from None
        return v

    # --- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, source: Any = None, **overrides: Any) -> JobParams:
        """Build from None, a dict, a JSON string/bytes, or a Path to a JSON file, then overrides."""
        data: dict[str, Any]
        if source is None:
            data = {}
        elif isinstance(source, JobParams):
            data = source.model_dump()
        elif isinstance(source, dict):
            if len(json.dumps(source, default=str)) > MAX_PARAMS_BYTES:
                raise InvalidParams(_TOO_LARGE)
            data = dict(source)
        elif isinstance(source, Path):
            data = _parse_json(_read_limited(source), str(source))
        elif isinstance(source, (str, bytes)):
            if len(source) > MAX_PARAMS_BYTES:
                raise InvalidParams(_TOO_LARGE)
            data = _parse_json(source, "params")
        else:
            raise InvalidParams(f"params must be a JSON object, got {type(source).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidParams(_describe(exc)) from None

    def to_json(self) -> str:
        return self.model_dump_json()

    def replace(self, **changes: Any) -> JobParams:
        return JobParams.load(self.model_dump(), **changes)

    def effective_seed(self, job_id: str) -> int:
        """The explicit seed, or one derived from the job id (stable across retries of the same job)."""
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "little")

    @property
    def full_mode(self) -> bool:
        return "full" in self.preprocess

    @property
    def ext_mode(self) -> bool:
        return self.preprocess.startswith("ext")


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidParams(f"cannot read params file {path}: {exc.strerror}") from None
    if size > MAX_PARAMS_BYTES:
        raise InvalidParams(f"params file {path} is {size} bytes; at most {MAX_PARAMS_BYTES} are allowed")
    return path.read_bytes()


def _parse_json(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParams(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidParams(f"{where} must be a JSON object, got {type(data).__name__}")
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "params"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(JobParams.model_fields)
            parts.append(f"unknown parameter '{field}' (known: {allowed})")
            continue
        value = err.get("input")
        msg = err["msg"]
        top = str(err["loc"][0]) if err["loc"] else ""
        info = JobParams.model_fields.get(top)
        hint = f" ({info.description})" if info is not None and info.description else ""
        parts.append(f"parameter '{field}' = {value!r} is invalid: {msg}{hint}")
    return "; ".join(parts)


def params_table() -> list[tuple[str, str, str, str]]:
    """(name, default, allowed values, meaning) rows for the README and `sadtalker params --table`."""
    rows = []
    for name, info in JobParams.model_fields.items():
        rows.append((name, json.dumps(info.default), _allowed(info), info.description or ""))
    return rows


def _allowed(info: Any) -> str:
    """A short human form of a field's type and range."""
    ann = info.annotation
    if get_origin(ann) is Literal:
        return " / ".join(json.dumps(v) for v in get_args(ann))
    if get_origin(ann) is list:
        return "list of integers, each -90..90"
    args = [a for a in get_args(ann) if a is not type(None)]
    base = args[0] if args else ann
    kind = {int: "integer", float: "number", bool: "true / false", str: "text"}[base]
    if args:
        kind += " or null"
    bounds = {b: getattr(m, b) for m in info.metadata for b in ("ge", "gt", "le") if hasattr(m, b)}
    if bounds:
        low = f"{bounds['ge']} <= x" if "ge" in bounds else f"{bounds['gt']} < x"
        kind += f", {low} <= {bounds['le']}"
    return kind

"""One declaration per deployed function: the single place its facts live.

A ``FunctionContract`` says which handler a function runs, which state of the ASL invokes it, the object
keys its role may read / write / delete (as ``JobKeys.any()`` globs), its environment, its size and
timeout, its event and result models, and the metric dimensions it emits. Everything else reads it:

* the CDK app (infra/components/functions.py, finalize.py, workflow.py, monitoring.py) builds the roles,
  environments, sizes, DefinitionSubstitutions and dashboard from it;
* the local runtime (sadtalker.local) routes the ASL's ARNs to the same handlers and runs each one with
  the environment and the S3 policy of its function (``s3_statements``), so what the template grants is
  what a local job may do;
* the handlers' decorator (functions/common.py) parses events and results with its models and emits
  its metrics.

A test compares the synthesized template with these declarations (tests/infra/test_contract.py).
This module is light: no torch, no boto3, no CDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sadtalker.jobs import ENHANCE_RANGE, INBOX, RENDER_CHUNK, JobKeys

from . import events as ev

SERVICE = "sadtalker"
METRICS_NAMESPACE = "SadTalker"
BUCKET_ENV = "SADTALKER_BUCKET"
WEIGHTS_ENV = "SADTALKER_WEIGHTS"
WEIGHTS_S3_ENV = "SADTALKER_WEIGHTS_S3"
STATE_MACHINE_ENV = "SADTALKER_STATE_MACHINE_ARN"
ADMISSION_QUEUE_ENV = "SADTALKER_ADMISSION_QUEUE_URL"
SETTLE_SECONDS_ENV = "SADTALKER_SETTLE_SECONDS"
MAX_RUNNING_JOBS_ENV = "SADTALKER_MAX_RUNNING_JOBS"
FINALIZE_VCPUS_ENV = "SADTALKER_FINALIZE_VCPUS"
MAX_CLIP_SECONDS_ENV = "SADTALKER_MAX_CLIP_SECONDS"
ENHANCE_RANGE_SECONDS_ENV = "SADTALKER_ENHANCE_RANGE_SECONDS"
NOTIFY_TOPIC_ENV = "SADTALKER_NOTIFY_TOPIC_ARN"
WEBHOOK_SECRET_ENV = "SADTALKER_WEBHOOK_SECRET_ARN"
LINK_EXPIRY_ENV = "SADTALKER_LINK_EXPIRY_S"
# The Fargate finalize task's default size (infra/config.py FinalizeTaskSize reads it).
FINALIZE_TASK_VCPUS = 4
# The operator's ceiling on a clip's length (the MaxClipSeconds stack parameter's default): it bounds
# every job's max_audio_seconds.
MAX_CLIP_SECONDS = 600
# Presigned links in notifications live this long by default (the LinkExpirySeconds stack parameter's
# default); a link signed with a Lambda role's session credentials dies with them, whichever comes first.
LINK_EXPIRY_S = 6 * 3600


class Deployed(StrEnum):
    """An environment value known only where the function is deployed (CDK token / local value)."""

    BUCKET = "bucket name"
    WEIGHTS = "weights directory"
    STATE_MACHINE = "state machine ARN"
    WEIGHTS_S3 = "weights S3 prefix"  # optional: only when the images pull their weights at cold start
    ADMISSION_QUEUE = "admission queue URL"
    SETTLE_SECONDS = "settle delay of an S3 drop"
    MAX_RUNNING_JOBS = "jobs running at once"
    FINALIZE_VCPUS = "vCPUs of the Finalize task"
    MAX_CLIP_SECONDS = "ceiling on a clip's length"
    # optional: enhancement seconds one range aims at (plan_chunks.RANGE_TARGET_S when unset); the local
    # runtime sets a small value so a short test clip gets several ranges
    ENHANCE_RANGE_SECONDS = "enhancement seconds per range"
    NOTIFY_TOPIC = "job notifications topic ARN"
    WEBHOOK_SECRET = "webhook signing secret ARN"
    LINK_EXPIRY = "presigned link lifetime (s)"


# Process settings every function gets (Powertools reads them at import time).
POWERTOOLS_ENV: dict[str, str | Deployed] = {
    "POWERTOOLS_SERVICE_NAME": SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
LIGHT_ENV = {**POWERTOOLS_ENV, BUCKET_ENV: Deployed.BUCKET}
HEAVY_ENV = {**LIGHT_ENV, WEIGHTS_ENV: Deployed.WEIGHTS, WEIGHTS_S3_ENV: Deployed.WEIGHTS_S3}

K = JobKeys.any()
RESULT_FILES = K.results
EVERY_INBOX_OBJECT = INBOX + "*"


@dataclass(frozen=True)
class Access:
    """Object-key globs (relative to the job bucket) a role may read / write / delete."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.read, *self.write, *self.delete)))

    def __or__(self, other: Access) -> Access:
        return Access(*(tuple(dict.fromkeys((*a, *b))) for a, b in
                        ((self.read, other.read), (self.write, other.write), (self.delete, other.delete))))


@dataclass(frozen=True)
class FunctionContract:
    name: str  # the deployed function's key (infra config, local function names)
    stage: str  # the stage it runs: metric dimension and timing record name
    handler: str | None  # "functions.x.handler"; None for a Fargate task (it has an ``entrypoint``)
    access: Access
    env: dict[str, str | Deployed]
    event: type[ev.Model] | None = None
    result: type[ev.Model] | None = None
    placeholder: str | None = None  # the ASL placeholder of its ARN (Task states)
    light: bool = False  # zip + light layer: never imports torch
    memory_mb: int = 256
    timeout_s: int = 30
    ephemeral_mb: int = 512
    records_timing: bool = False  # writes JobKeys.timing(<stage>) for result.json
    entrypoint: str | None = None  # a Fargate task's "module:function", called with the environment (an int exit code)

    @property
    def metric_dimensions(self) -> dict[str, str]:
        """The dimensions of every stage metric this function emits (and the dashboard charts)."""
        return {"service": SERVICE, "stage": self.stage}

    def s3_statements(self, bucket_arn: str) -> list[dict[str, Any]]:
        """The role's S3 statements as IAM JSON: the CDK app adds exactly these, the local runtime
        evaluates exactly these. Readers may list their own prefixes: that is how a missing key they may
        read is told from one they may not (storage.S3Storage lists the key when S3 answers 403)."""
        a = self.access
        out: list[dict[str, Any]] = []
        if a.read:
            out.append(_statement("ReadObjects", "s3:GetObject", [f"{bucket_arn}/{p}" for p in a.read]))
            # listing is limited to the prefixes it may read (existence checks list the key itself)
            out.append(dict(_statement("ListForExistenceChecks", "s3:ListBucket", bucket_arn),
                            Condition={"StringLike": {"s3:prefix": list(a.read)}}))
        if a.write:
            out.append(_statement("WriteObjects", "s3:PutObject", [f"{bucket_arn}/{p}" for p in a.write]))
        if a.delete:
            out.append(_statement("DeleteOwnResults", "s3:DeleteObject", [f"{bucket_arn}/{p}" for p in a.delete]))
        return out


def _statement(sid: str, action: str, resource: str | list[str]) -> dict[str, Any]:
    if isinstance(resource, list) and len(resource) == 1:
        resource = resource[0]
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}


# What Finalize reads and writes: the plan's segments (and the ranges' error records), the waveform.
FINALIZE_ACCESS = Access(
    read=(K.record, K.plan, K.audio, K.segments + "*", K.range_errors + "*", K.timings + "*", K.partial_video),
    write=(K.partial_video, *RESULT_FILES, K.timing("finalize")),
    # a failed finalize removes what it wrote (and its temporary video)
    delete=(K.partial_video, *RESULT_FILES),
)

# The state machine role's S3 access (infra/components/workflow.py grants it; the local runtime enforces it
# on the Distributed Maps' calls): ItemReader reads the item arrays, ResultWriter writes (and reads back)
# the children's results.
STATE_MACHINE_ACCESS = Access(read=(K.chunk_items, K.range_items, K.map_results + "*"),
                              write=(K.map_results + "*",))

# Publishing the HLS stream (sadtalker.hls) after a segment is written: list the finished segments and sign
# links to them (a link is only as good as the signer's GET), read the stored playlists and the audio
# index, write the playlists; remove the stream when the job's error.json is found beside it.
STREAM_PUBLISH = Access(read=(K.plan, K.segments + "*", K.stream, K.stream_parts + "*", K.stream_audio_parts + "*",
                              K.error),
                        write=(K.stream, K.stream_parts + "*"), delete=(K.stream, K.stream_parts + "*"))
STREAM_ENV = {LINK_EXPIRY_ENV: Deployed.LINK_EXPIRY}  # the lifetime of the playlists' presigned links

CONTRACTS: dict[str, FunctionContract] = {c.name: c for c in (
    FunctionContract(
        name="validate_job", stage="validate_job", handler="functions.validate_job.handler",
        placeholder="ValidateJobFunctionArn", light=True, event=ev.ValidateJobEvent, result=ev.ValidateJobResult,
        access=Access(read=(EVERY_INBOX_OBJECT,), write=(K.record, K.timing("validate_job"))),
        # the task size and range length PlanChunks plans with: ValidateJob's quote uses the same plan
        env={**LIGHT_ENV, FINALIZE_VCPUS_ENV: Deployed.FINALIZE_VCPUS,
             ENHANCE_RANGE_SECONDS_ENV: Deployed.ENHANCE_RANGE_SECONDS},
        memory_mb=1024, timeout_s=60, records_timing=True,
    ),
    FunctionContract(
        name="preprocess", stage="preprocess", handler="functions.preprocess.handler",
        placeholder="PreprocessFunctionArn", event=ev.PreprocessEvent, result=ev.PreprocessResult,
        access=Access(
            read=(EVERY_INBOX_OBJECT,),
            write=(K.original_image, K.source_image, K.face, K.ref_coeffs("pose"), K.ref_coeffs("eyeblink"),
                   K.timing("preprocess")),
        ),
        env=HEAVY_ENV, memory_mb=4096, timeout_s=300, ephemeral_mb=4096, records_timing=True,
    ),
    FunctionContract(
        name="audio_features", stage="audio_features", handler="functions.audio_features.handler",
        placeholder="AudioFeaturesFunctionArn", event=ev.AudioFeaturesEvent, result=ev.AudioFeaturesResult,
        access=Access(read=(EVERY_INBOX_OBJECT,), write=(K.audio, K.stream_audio_parts + "*", K.timing("audio_features"))),
        env={**HEAVY_ENV, MAX_CLIP_SECONDS_ENV: Deployed.MAX_CLIP_SECONDS}, memory_mb=2048, timeout_s=180, ephemeral_mb=2048, records_timing=True,
    ),
    FunctionContract(
        name="audio2coeff", stage="audio2coeff", handler="functions.audio2coeff.handler",
        placeholder="Audio2CoeffFunctionArn", event=ev.Audio2CoeffEvent, result=ev.Audio2CoeffResult,
        access=Access(
            read=(K.face, K.audio, K.ref_coeffs("pose"), K.ref_coeffs("eyeblink"), K.coeffs),
            write=(K.coeffs, K.timing("audio2coeff")),
        ),
        env=HEAVY_ENV, memory_mb=3008, timeout_s=300, ephemeral_mb=4096, records_timing=True,
    ),
    FunctionContract(
        name="plan_chunks", stage="plan_chunks", handler="functions.plan_chunks.handler",
        placeholder="PlanChunksFunctionArn", light=True, event=ev.PlanChunksEvent, result=ev.PlanChunksResult,
        access=Access(write=(K.plan, K.chunk_items, K.range_items, K.timing("plan_chunks"))),
        env={**LIGHT_ENV, FINALIZE_VCPUS_ENV: Deployed.FINALIZE_VCPUS,
             ENHANCE_RANGE_SECONDS_ENV: Deployed.ENHANCE_RANGE_SECONDS},
        records_timing=True,
    ),
    FunctionContract(
        name="render_chunk", stage="render_chunk", handler="functions.render_chunk.handler",
        placeholder="RenderChunkFunctionArn", event=ev.RenderChunkEvent, result=ev.RenderChunkResult,
        # without an enhancer the chunk pastes back onto the photo and writes its video segment;
        # with one, lossless frames for the enhancement task
        access=Access(read=(K.coeffs, K.face, K.source_image, K.original_image),
                      write=(K.chunks + "*", K.segments + "*", K.timing(f"{RENDER_CHUNK}-*"))) | STREAM_PUBLISH,
        env={**HEAVY_ENV, **STREAM_ENV}, memory_mb=10240, timeout_s=900, ephemeral_mb=4096, records_timing=True,
    ),
    FunctionContract(
        # Finalize on Lambda, every job: the segments and the video on /tmp, the concat copies the video.
        name="finalize_lambda", stage="finalize", handler="functions.finalize.handler",
        placeholder="FinalizeFunctionArn", event=ev.FinalizeEvent, result=ev.FinalizeResult,
        access=FINALIZE_ACCESS | STREAM_PUBLISH, env={**HEAVY_ENV, **STREAM_ENV}, memory_mb=10240, timeout_s=900,
        ephemeral_mb=10240,
        records_timing=True,
    ),
    FunctionContract(
        # One Fargate task of the EnhanceRanges Map per enhancement range (JOB_ID, RANGE_START, RANGE_END in
        # its container overrides): paste-back, GFPGAN, RealESRGAN, the range's video segment.
        name="enhance_range_task", stage=ENHANCE_RANGE, handler=None, entrypoint="functions.enhance_range:main",
        access=Access(read=(K.record, K.plan, K.face, K.original_image, K.chunks + "*"),
                      write=(K.segments + "*", K.range_errors + "*", K.timing(f"{ENHANCE_RANGE}-*"))) | STREAM_PUBLISH,
        env={**HEAVY_ENV, **STREAM_ENV}, records_timing=True,
    ),
    FunctionContract(
        name="check_result", stage="check_result", handler="functions.check_result.handler",
        placeholder="CheckResultFunctionArn", light=True, event=ev.CheckResultEvent, result=ev.CheckResultOutput,
        access=Access(read=(K.result, K.video)), env=LIGHT_ENV,
    ),
    FunctionContract(
        name="record_failure", stage="record_failure", handler="functions.record_failure.handler",
        placeholder="RecordFailureFunctionArn", light=True, event=ev.RecordFailureEvent, result=ev.RecordFailureResult,
        # a finalize killed between its writes may leave a result behind: a failed job has none;
        # it reads the Distributed Maps' failed-results files to name the chunk or range that failed;
        # it removes the HLS stream
        access=Access(read=(K.map_results + "*", K.stream_parts + "*"), write=(K.error,),
                      delete=(*RESULT_FILES, K.stream, K.stream_parts + "*")),
        env=LIGHT_ENV,
    ),
    FunctionContract(
        # S3 drop -> the admission queue (it lists the job folder; starts nothing itself)
        name="starter", stage="starter", handler="functions.starter.handler", light=True,
        access=Access(read=(EVERY_INBOX_OBJECT,)),
        env={**LIGHT_ENV, ADMISSION_QUEUE_ENV: Deployed.ADMISSION_QUEUE, SETTLE_SECONDS_ENV: Deployed.SETTLE_SECONDS},
    ),
    FunctionContract(
        # the admission queue -> StartExecution when fewer than MAX_RUNNING_JOBS run; a reused folder's error.json
        name="admit_job", stage="admit_job", handler="functions.admit_job.handler", light=True,
        access=Access(read=(EVERY_INBOX_OBJECT,), write=(K.error,)),
        env={**LIGHT_ENV, STATE_MACHINE_ENV: Deployed.STATE_MACHINE, MAX_RUNNING_JOBS_ENV: Deployed.MAX_RUNNING_JOBS},
    ),
    FunctionContract(
        # execution status events -> the SNS topic and the job's webhook. It reads the outcome, and the job
        # record for the validated notify_url; it may GET video/preview/stream because a presigned link
        # is only as good as the signer's own permission.
        name="notify", stage="notify", handler="functions.notify.handler", light=True,
        access=Access(read=(K.result, K.error, K.record, K.video, K.preview, K.stream)),
        env={**LIGHT_ENV, NOTIFY_TOPIC_ENV: Deployed.NOTIFY_TOPIC, WEBHOOK_SECRET_ENV: Deployed.WEBHOOK_SECRET,
             LINK_EXPIRY_ENV: Deployed.LINK_EXPIRY},
        # the webhook's retries (sadtalker.notification: at most ~47 s) fit inside
        timeout_s=90,
    ),
)}

LAMBDA_FUNCTIONS = tuple(n for n, c in CONTRACTS.items() if c.handler is not None)
LIGHT_FUNCTIONS = tuple(n for n in LAMBDA_FUNCTIONS if CONTRACTS[n].light)
HEAVY_FUNCTIONS = tuple(n for n in LAMBDA_FUNCTIONS if not CONTRACTS[n].light)
TASK_STATE_FUNCTIONS = {c.placeholder: c for c in CONTRACTS.values() if c.placeholder}
HANDLERS: dict[str, str] = {n: CONTRACTS[n].handler for n in LAMBDA_FUNCTIONS}  # type: ignore[misc]
ENHANCE_RANGE_TASK = CONTRACTS["enhance_range_task"]


def contract_of_stage(stage: str) -> FunctionContract:
    """The (first) function that runs ``stage``; finalize's Lambda and task share its models and metrics."""
    return next(c for c in CONTRACTS.values() if c.stage == stage)


def resolve_env(contract: FunctionContract, values: dict[Deployed, str]) -> dict[str, str]:
    """The function's environment with the deployment's values filled in (missing optional ones dropped)."""
    return {k: (values[v] if isinstance(v, Deployed) else v) for k, v in contract.env.items()
            if not isinstance(v, Deployed) or v in values}

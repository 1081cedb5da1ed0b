"""Every tunable of the deployment, with defaults, overridable from CDK context.

Override either with a nested ``"sadtalker"`` object in cdk.json's context or per value on the command
line with a dotted key, e.g. ``cdk deploy -c sadtalker.functions.render_chunk.memory_mb=8192
-c sadtalker.render_concurrency=20 -c sadtalker.weights_s3_uri=s3://my-bucket/weights/``.
Values given on the command line are strings; they are parsed as JSON when they look like JSON.

Why the function defaults (functions/contract.py holds them): the renderer dominates everything - about
9 s per 256 px frame on 2 vCPU in fp32 with the original code. Lambda gives up to 6 vCPU at 10,240 MB, so
RenderChunk gets the maximum: ~2.6 s per frame, and chunks are sized automatically to render within 600 s
of the 900 s limit (stages/plan_chunks.py). Preprocess (face detector + ResNet-50 3DMM regressor) and
Audio2Coeff load a few hundred MB of weights and run once per job: 2-3 vCPU is plenty. The audio stages
take under 2 s of compute. Ephemeral storage (/tmp) is sized so the weights still fit when they are
pulled from S3 at cold start instead of being baked into the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from functions.contract import CONTRACTS, FINALIZE_TASK_VCPUS, MAX_CLIP_SECONDS


@dataclass(frozen=True)
class FunctionSize:
    memory_mb: int
    timeout_s: int
    ephemeral_mb: int = 512
    reserved_concurrency: int | None = None


# The defaults are each function's contract (functions/contract.py), where the reasons stand too.
DEFAULT_SIZES: dict[str, FunctionSize] = {
    name: FunctionSize(memory_mb=c.memory_mb, timeout_s=c.timeout_s, ephemeral_mb=c.ephemeral_mb)
    for name, c in CONTRACTS.items() if c.handler is not None
}


# The RenderConcurrency stack parameter's default: RenderChunk child executions of one job in flight. 150
# is the projection's recommendation (benchmarks/projection.py, docs/performance.md: the smallest of
# 10..400 that meets the most goal workloads); 150 Lambdas of 10 GB fit an account's default 1,000
# concurrent executions with room for other jobs.
RENDER_CONCURRENCY = 150


@dataclass(frozen=True)
class FinalizeTaskSize:
    """Fargate task of one enhancement range (paste-back, GFPGAN/RealESRGAN, segment encode)."""

    cpu: int = FINALIZE_TASK_VCPUS * 1024  # CPU units (1024 = 1 vCPU); Fargate allows up to 16384
    memory_mib: int = 16384
    ephemeral_gib: int = 30  # 21..200 GiB


@dataclass(frozen=True)
class DeployConfig:
    functions: dict[str, FunctionSize] = field(default_factory=lambda: dict(DEFAULT_SIZES))
    finalize: FinalizeTaskSize = field(default_factory=FinalizeTaskSize)
    # RenderChunks Distributed Map child executions in flight (1..10,000): the RenderConcurrency
    # parameter's default.
    render_concurrency: int = RENDER_CONCURRENCY
    # The enhancement tasks run in private isolated subnets of two AZs (the ASL passes two subnets and
    # AssignPublicIp DISABLED): S3 through a gateway endpoint, ECR and CloudWatch Logs through interface
    # endpoints, no NAT, no internet. Interface endpoints cost per AZ-hour, so they sit in 1 AZ by default
    # (the other AZ reaches them across AZs); 2 gives AZ-independent image pulls.
    endpoint_azs: int = 1
    # Empty: weights are baked into the images (weights/ in the build context). Else "s3://bucket/prefix/":
    # the containers download the prefix to /tmp at cold start (SADTALKER_WEIGHTS_S3).
    weights_s3_uri: str = ""
    # S3 drop: seconds between a folder's media appearing and its admission (objects uploaded together,
    # in any order, are all there by then), and the jobs that may run at once (the MaxRunningJobs stack
    # parameter's default; more wait in the admission queue).
    settle_seconds: int = 15
    # The MaxClipSeconds stack parameter's default: the ceiling on every job's max_audio_seconds.
    max_clip_seconds: int = MAX_CLIP_SECONDS
    max_running_jobs: int = 10
    work_expiry_days: int = 7
    # Users' inputs (inbox/) and results (outputs/): 0 keeps them; N > 0 expires them after N days.
    inbox_expiry_days: int = 0
    outputs_expiry_days: int = 0
    noncurrent_expiry_days: int = 30
    log_retention_days: int = 30
    access_log_expiry_days: int = 90
    # Optional SNS topic ARN that receives the alarms.
    alarm_topic_arn: str = ""
    # Optional: the light functions' third-party packages from a prepared directory (else built by pip).
    light_deps_dir: str = ""

    def size(self, name: str) -> FunctionSize:
        return self.functions[name]

    def check(self) -> DeployConfig:
        if not 1 <= self.render_concurrency <= 10000:
            raise ValueError(f"render_concurrency must be 1..10000 (Distributed Map), got {self.render_concurrency}")
        if self.endpoint_azs not in (1, 2):
            raise ValueError(f"endpoint_azs must be 1 or 2, got {self.endpoint_azs}")
        if self.weights_s3_uri and not self.weights_s3_uri.startswith("s3://"):
            raise ValueError(f"weights_s3_uri must look like s3://bucket/prefix/, got {self.weights_s3_uri!r}")
        for name, s in self.functions.items():
            if not 128 <= s.memory_mb <= 10240:
                raise ValueError(f"{name}: memory_mb must be 128..10240, got {s.memory_mb}")
            if not 1 <= s.timeout_s <= 900:
                raise ValueError(f"{name}: timeout_s must be 1..900 (Lambda's 15 minutes), got {s.timeout_s}")
            if not 512 <= s.ephemeral_mb <= 10240:
                raise ValueError(f"{name}: ephemeral_mb must be 512..10240, got {s.ephemeral_mb}")
        if not 0 <= self.settle_seconds <= 900:
            raise ValueError(f"settle_seconds must be 0..900 (SQS DelaySeconds), got {self.settle_seconds}")
        if self.max_running_jobs < 1:
            raise ValueError(f"max_running_jobs must be >= 1, got {self.max_running_jobs}")
        if self.work_expiry_days < 1:
            raise ValueError(f"work_expiry_days must be >= 1, got {self.work_expiry_days}")
        for key in ("inbox_expiry_days", "outputs_expiry_days"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (0 keeps the objects), got {getattr(self, key)}")
        if not 21 <= self.finalize.ephemeral_gib <= 200:
            raise ValueError(f"finalize.ephemeral_gib must be 21..200, got {self.finalize.ephemeral_gib}")
        return self

    @property
    def weights_bucket_and_prefix(self) -> tuple[str, str] | None:
        if not self.weights_s3_uri:
            return None
        bucket, _, prefix = self.weights_s3_uri[5:].partition("/")
        return bucket, prefix


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _set_path(tree: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def from_context(get: Any, all_keys: dict[str, Any] | None = None) -> DeployConfig:
    """Build the config from ``node.try_get_context`` (``get``) and the flat context dict (dotted keys)."""
    tree: dict[str, Any] = dict(_parse(get("sadtalker")) or {})
    for key, value in (all_keys or {}).items():
        if key.startswith("sadtalker."):
            _set_path(tree, key.split(".")[1:], _parse(value))
    return build(tree)


def build(tree: dict[str, Any]) -> DeployConfig:
    """Apply a nested override dict to the defaults; unknown keys are errors (a typo must not pass silently)."""
    cfg = DeployConfig()
    known = {f.name for f in fields(DeployConfig)}
    unknown = sorted(set(tree) - known)
    if unknown:
        raise ValueError(f"unknown sadtalker context key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    changes: dict[str, Any] = {}
    for key, value in tree.items():
        if key == "functions":
            sizes = dict(cfg.functions)
            for name, over in value.items():
                if name not in sizes:
                    raise ValueError(f"unknown function {name!r}; known: {', '.join(sizes)}")
                sizes[name] = replace(sizes[name], **over)
            changes["functions"] = sizes
        elif key == "finalize":
            changes["finalize"] = replace(cfg.finalize, **value)
        else:
            changes[key] = value
    return replace(cfg, **changes).check()

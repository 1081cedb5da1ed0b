"""The Lambda functions of the Task states and the S3-drop starter.

* Light functions (validate_job, plan_chunks, check_result, record_failure, starter): zip code asset
  (library + handlers, prepared without Docker by infra.bundling) + one shared dependency layer
  (numpy, pydantic, pillow, Powertools). They never import torch.
* Inference functions (preprocess, audio_features, audio2coeff, render_chunk, finalize_lambda): one
  container image per weights role (functions/Dockerfile, target ``lambda``, ``WEIGHTS_ROLE`` build arg:
  ``IMAGE_ROLES``; weights baked in or pulled from S3) and one DockerImageFunction per Task state, the
  handler selected by the image CMD. The roles' images share every layer but their weights.

Every function gets its own role, written by hand: its log group, X-Ray, and exactly the S3 statements
of its contract (functions/contract.py; ``s3:ListBucket`` on the bucket itself so a missing key reads as
404, not 403). Handler, environment, memory and timeout come from the contract too.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, CfnParameter, Duration, Fn, IgnoreMode, RemovalPolicy, Size, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.contract import (
    CONTRACTS,
    HEAVY_FUNCTIONS,
    LIGHT_FUNCTIONS,
    LINK_EXPIRY_S,
    Deployed,
    FunctionContract,
    resolve_env,
)
from sadtalker.stages.plan_chunks import RANGE_TARGET_S

from .. import bundling
from ..config import DeployConfig
from ..nag import acknowledge
from ..paths import DOCKERFILE, REPO_ROOT
from .storage import JobBucket

LIGHT_RUNTIME = lambda_.Runtime.PYTHON_3_12
WEIGHTS_IN_IMAGE = "/opt/sadtalker/weights"
# The weight files each heavy function's image carries (infra/images/select_weights.py: which files a role
# holds and why). finalize_lambda loads no network: an enhancer runs in the EnhanceRanges Fargate tasks.
IMAGE_ROLES: dict[str, str] = {
    "preprocess": "preprocess",
    "audio_features": "none",
    "audio2coeff": "audio2coeff",
    "render_chunk": "render",
    "finalize_lambda": "none",
    "enhance_range_task": "enhance",
}
# A Python run from a prepared dir may leave bytecode behind: never let it change or bloat an asset.
NO_BYTECODE = ["**/__pycache__", "**/*.pyc"]


def grant_bucket_access(
    principal: iam.IGrantable, store: JobBucket, contract: FunctionContract, owner: Construct
) -> list[iam.PolicyStatement]:
    """The contract's S3 statements on the role (no wildcard actions): the same JSON the local runtime
    enforces."""
    statements = [iam.PolicyStatement.from_json(st) for st in contract.s3_statements(store.bucket.bucket_arn)]
    for st in statements:
        principal.grant_principal.add_to_principal_policy(st)
    for pattern in contract.access.patterns:
        acknowledge(
            owner,
            f"AwsSolutions-IAM5[Resource::<{_bucket_token_id(store)}.Arn>/{pattern}]",
            f"Object access is limited to the {pattern!r} prefix of the job bucket; job ids are not "
            "known at deploy time, so the per-job part of the key must be a wildcard.",
        )
    return statements


def _bucket_token_id(store: JobBucket) -> str:
    return Stack.of(store).get_logical_id(store.bucket.node.default_child)


def function_role(scope: Construct, cid: str, log_group: logs.ILogGroup, description: str) -> iam.Role:
    """A Lambda role that may write its own log group and nothing else (X-Ray is added by tracing)."""
    role = iam.Role(scope, cid, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    role.add_to_policy(iam.PolicyStatement(
        sid="OwnLogGroup", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
    ))
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions.",
    )
    return role


class PipelineFunctions(Construct):
    """All Lambda functions; ``self.functions[name]`` by the names of config.HEAVY/LIGHT_FUNCTIONS."""

    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, store: JobBucket) -> None:
        super().__init__(scope, cid)
        self.config = config
        self.store = store
        self.functions: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.max_clip_seconds = CfnParameter(
            Stack.of(self), "MaxClipSeconds", type="Number", default=config.max_clip_seconds, min_value=1,
            description="the longest speech any job may have: bounds every job's max_audio_seconds",
        )
        self.deployed = deployed_values(config, store)
        self.deployed[Deployed.MAX_CLIP_SECONDS] = self.max_clip_seconds.value_as_string

        light_deps = config.light_deps_dir or str(bundling.light_deps_dir())
        self.deps_layer = lambda_.LayerVersion(
            self,
            "LightDeps",
            code=lambda_.Code.from_asset(light_deps, exclude=NO_BYTECODE),
            compatible_runtimes=[LIGHT_RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="numpy, pydantic, pillow, aws-lambda-powertools for the light functions (no torch)",
        )
        self.light_code = lambda_.Code.from_asset(str(bundling.light_code_dir()), exclude=NO_BYTECODE)
        for name in LIGHT_FUNCTIONS:
            self._add(name, light=True)

        self.image_build_args = {"WEIGHTS_SOURCE": "s3" if config.weights_s3_uri else "image"}
        for name in HEAVY_FUNCTIONS:
            self._add(name, light=False)

    def _add(self, name: str, *, light: bool) -> lambda_.Function:
        size = self.config.size(name)
        contract = CONTRACTS[name]
        cid = "".join(part.title() for part in name.split("_"))
        log_group = logs.LogGroup(
            self,
            f"{cid}Logs",
            retention=retention(self.config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = function_role(self, f"{cid}Role", log_group, f"sadtalker {name} function")
        common = dict(
            role=role,
            log_group=log_group,
            memory_size=size.memory_mb,
            timeout=Duration.seconds(size.timeout_s),
            ephemeral_storage_size=Size.mebibytes(size.ephemeral_mb),
            reserved_concurrent_executions=size.reserved_concurrency if light else None,
            tracing=lambda_.Tracing.ACTIVE,
            architecture=lambda_.Architecture.X86_64,
            description=f"sadtalker {name} ({contract.handler})",
        )
        if light:
            fn: lambda_.Function = lambda_.Function(
                self,
                cid,
                runtime=LIGHT_RUNTIME,
                handler=contract.handler,
                code=self.light_code,
                layers=[self.deps_layer],
                environment=resolve_env(contract, self.deployed),
                **common,
            )
            acknowledge(
                fn,
                "AwsSolutions-L1",
                "Python 3.12 on purpose: the same interpreter as the inference image "
                "(public.ecr.aws/lambda/python:3.12), so light and heavy stages run the library on one version.",
            )
        else:
            fn = lambda_.DockerImageFunction(
                self,
                cid,
                code=lambda_.DockerImageCode.from_image_asset(
                    str(REPO_ROOT),
                    file=DOCKERFILE,
                    target="lambda",
                    cmd=[contract.handler],
                    build_args={**self.image_build_args, "WEIGHTS_ROLE": IMAGE_ROLES[name]},
                    platform=ecr_assets.Platform.LINUX_AMD64,
                    ignore_mode=IgnoreMode.DOCKER,
                ),
                environment=resolve_env(contract, self.deployed),
                **common,
            )
            self._grant_weights(role)
            self._reserve_concurrency(fn, cid, size.reserved_concurrency)
        grant_bucket_access(role, self.store, contract, role)
        self.functions[name] = fn
        self.log_groups[name] = log_group
        return fn

    def _reserve_concurrency(self, fn: lambda_.Function, cid: str, default: int | None) -> None:
        """A deploy parameter ``<Function>ReservedConcurrency`` (0 = none: the account's shared pool).

        Reserving concurrency for the heavy functions keeps a job's render slots from being taken by other
        workloads of the account (and caps what one stack may take); it is a deployment choice, so a
        parameter rather than a code change."""
        stack = Stack.of(self)
        param = CfnParameter(
            stack, f"{cid}ReservedConcurrency", type="Number", default=default or 0, min_value=0,
            description=f"reserved concurrent executions of the {cid} function (0 = unreserved)",
        )
        unreserved = CfnCondition(stack, f"{cid}Unreserved", expression=Fn.condition_equals(param.value_as_number, 0))
        cfn = fn.node.default_child
        cfn.add_property_override(
            "ReservedConcurrentExecutions", Fn.condition_if(unreserved.logical_id, Aws.NO_VALUE, param.value_as_number)
        )

    def _grant_weights(self, role: iam.Role) -> None:
        grant_weights_read(role, self.config)


def deployed_values(config: DeployConfig, store: JobBucket, state_machine_arn: str | None = None) -> dict[Deployed, str]:
    """What the contracts' deployment-only environment values are in this stack."""
    values = {Deployed.BUCKET: store.bucket.bucket_name, Deployed.WEIGHTS: WEIGHTS_IN_IMAGE,
              Deployed.FINALIZE_VCPUS: f"{config.finalize.cpu / 1024:g}",
              Deployed.ENHANCE_RANGE_SECONDS: f"{RANGE_TARGET_S:g}",
              # the HLS playlists' presigned links (the notify function's come from LinkExpirySeconds)
              Deployed.LINK_EXPIRY: str(LINK_EXPIRY_S)}
    if config.weights_s3_uri:
        values[Deployed.WEIGHTS_S3] = config.weights_s3_uri
    if state_machine_arn:
        values[Deployed.STATE_MACHINE] = state_machine_arn
    return values


def grant_weights_read(role: iam.IGrantable, config: DeployConfig) -> None:
    """Read access to the S3 weights prefix when the images pull their weights at cold start."""
    where = config.weights_bucket_and_prefix
    if where is None:
        return
    bucket, prefix = where
    role.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        sid="ReadWeights", actions=["s3:GetObject"], resources=[f"arn:aws:s3:::{bucket}/{prefix}*"]
    ))
    role.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        sid="ListWeights", actions=["s3:ListBucket"], resources=[f"arn:aws:s3:::{bucket}"],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
    ))
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{bucket}/{prefix}*]",
        "The weights are every object under the configured weights prefix (read-only).",
    )


_RETENTIONS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
}


def retention(days: int) -> logs.RetentionDays:
    """The nearest CloudWatch retention period at or above ``days`` (two years at most)."""
    name = next((n for d, n in _RETENTIONS.items() if d >= days), "TWO_YEARS")
    return logs.RetentionDays[name]

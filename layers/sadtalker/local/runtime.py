"""LocalRuntime: deploy the stack's resources into moto, run jobs through the real ASL.

The ASL placeholders (statemachine/sadtalker.asl.json; CDK's DefinitionSubstitutions fill the same) are
the Task states' function ARNs (``placeholder`` of each contract in functions/contract.py) and:

===========================  ==========================================================================
ClusterArn                   ECS cluster of the enhancement task
EnhanceTaskDefinitionArn     Fargate task definition; the container runs the task contract's ``entrypoint``
EnhanceContainerName         its container name (for the JOB_ID / RANGE_START / RANGE_END overrides)
SubnetId1, SubnetId2         private subnets of the enhancement task
EnhanceSecurityGroupId       its security group
RenderMaxConcurrency         render Map MaxConcurrency, a decimal integer as a string ("0" = no limit);
                             PlanChunks sizes chunks for the same number (it reaches it through the state data)
===========================  ==========================================================================

Deployed = tested: every handler runs with the environment and S3 policy of its function in the
deployed stack (``deployed.py``: from the contract by default, or from a synthesized template), the
Fargate entrypoint with its task definition's environment plus the state machine's overrides and its
task role's policy, and the Distributed Maps' ItemReader / ResultWriter calls with the state machine
role's S3 policy (``STATE_MACHINE_ACCESS``). A storage call outside the policy fails like S3's 403 (``AccessDenied``); a Lambda
result over 256 KB or container overrides over 8,192 characters fail as on AWS. Not enforced locally:
function timeouts and memory (this machine is not a 6-vCPU Lambda; a render chunk may take longer here),
IAM outside S3 (lambda:InvokeFunction, states:StartExecution, ecs:RunTask: the template tests check
those statements).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from functions.common import FunctionContext, running_as
from functions.contract import (
    CONTRACTS,
    FINALIZE_TASK_VCPUS,
    MAX_CLIP_SECONDS,
    TASK_STATE_FUNCTIONS,
    Deployed,
    FunctionContract,
)
from sadtalker.jobs import INBOX, JobKeys
from sadtalker.notification import ALLOW_LOOPBACK_ENV
from statemachine import ASL_FILE

from .background import polling
from .deployed import (
    TASK,
    DeployedFunction,
    from_contract,
    from_template,
    state_machine_policy,
    task_entrypoint,
)
from .moto_patches import LambdaRoute, patched_moto
from .notifications import NOTIFY, LocalNotifications

REGION = "us-east-1"
# Deployment values are read only through a function's own environment (functions.common.setting): a
# local run removes them from its process, so a handler reading os.environ directly fails as on AWS.
_FUNCTION_ONLY_ENV = sorted({k for c in CONTRACTS.values() for k, v in c.env.items() if isinstance(v, Deployed)})
STATE_MACHINE_NAME = "sadtalker"
TASK_CONTAINER = "enhance"
WEIGHTS_NOT_SET = "/nonexistent/sadtalker-weights"  # a run without a model store: loads fail by name


def local_name(contract: FunctionContract) -> str:
    """The local function (or task family) name: ``sadtalker-<stage>``, e.g. ``sadtalker-render-chunk``."""
    return "sadtalker-" + contract.stage.replace("_", "-")


# placeholder -> (local function name, handler module)
LAMBDAS: dict[str, tuple[str, str]] = {
    ph: (local_name(c), c.handler.rsplit(".", 1)[0]) for ph, c in TASK_STATE_FUNCTIONS.items() if c.handler
}
STARTER = CONTRACTS["starter"]
STARTER_FUNCTION = local_name(STARTER)
ADMIT = CONTRACTS["admit_job"]
ADMIT_FUNCTION = local_name(ADMIT)
ADMISSION_QUEUE = "sadtalker-admission"
TASK_FAMILY = local_name(TASK)
PLACEHOLDERS: tuple[str, ...] = (
    *LAMBDAS,
    "ClusterArn",
    "EnhanceTaskDefinitionArn",
    "EnhanceContainerName",
    "SubnetId1",
    "SubnetId2",
    "EnhanceSecurityGroupId",
    "RenderMaxConcurrency",
)
_BY_LOCAL_NAME: dict[str, FunctionContract] = {
    **{local_name(c): c for c in CONTRACTS.values() if c.handler}, TASK_FAMILY: TASK,
}


def asl_path() -> Path:
    return ASL_FILE


def substitute(definition: str, values: dict[str, str]) -> str:
    """CDK DefinitionSubstitutions semantics: every ``${Name}`` replaced; a missing value is an error."""

    def rep(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no value for placeholder ${{{m.group(1)}}} in the state machine definition")
        return str(values[m.group(1)])

    return re.sub(r"\$\{(\w+)\}", rep, definition)


DRAIN_S = 60.0  # how long closing a runtime waits for handlers still running in moto's threads


@dataclass
class Deployment:
    bucket: str
    state_machine_arn: str
    substitutions: dict[str, str]
    function_names: dict[str, str] = field(default_factory=dict)


class LocalRuntime:
    """Usage::

        with LocalRuntime(weights_dir=...) as rt:
            arn = rt.start(job_id, image_path, audio_path, params)
            desc = rt.wait(arn)
    """

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        *,
        bucket: str = "sadtalker-local",
        workers: int | None = None,
        max_concurrency: int | None = None,
        retry_time_scale: float = 0.01,
        s3_drop: bool = False,
        quiet: bool = True,
        template: dict[str, Any] | None = None,
        max_running_jobs: int = 4,
        settle_seconds: int = 1,
        finalize_vcpus: float = FINALIZE_TASK_VCPUS,
        max_clip_seconds: float = MAX_CLIP_SECONDS,
        enhance_range_seconds: float | None = None,
        allow_loopback_webhooks: bool = False,
    ):
        """``template``: a synthesized CloudFormation template whose functions' environments and S3
        policies the handlers run with (default: the contract's, which the template tests prove equal).
        ``s3_drop``: objects under inbox/ start jobs as on AWS (EventBridge -> starter -> admission queue
        -> admit_job, polled here as Lambda's SQS event source does), at most ``max_running_jobs`` at once,
        ``settle_seconds`` after a folder's media appeared. ``enhance_range_seconds``: the enhancement
        seconds PlanChunks sizes a range for (default: the deployed value). ``allow_loopback_webhooks``: tests' webhook
        receivers on 127.0.0.1 over http (sadtalker.notification refuses them everywhere else)."""
        from .workers import plan_workers

        self.weights_dir = str(weights_dir) if weights_dir else None
        self.bucket = bucket
        self.template = template
        self.workers, self.threads = plan_workers(workers)
        self.max_concurrency = max_concurrency if max_concurrency is not None else max(1, self.workers)
        self.retry_time_scale = retry_time_scale
        self.s3_drop = s3_drop
        self.max_running_jobs = max_running_jobs
        self.settle_seconds = settle_seconds
        self.finalize_vcpus = finalize_vcpus  # what PlanChunks' admission projects a range task with
        self.max_clip_seconds = max_clip_seconds
        self.enhance_range_seconds = enhance_range_seconds  # None: the deployed target (plan_chunks)
        self.allow_loopback_webhooks = allow_loopback_webhooks
        self.notifications: LocalNotifications | None = None  # job-end events -> topic and webhooks
        self.queue_url = ""
        self.quiet = quiet
        self.handlers: dict[str, Callable[[dict, Any], Any]] = {}
        self.ecs_tasks: dict[str, Callable[[dict[str, str]], int]] = {}
        self.route = LambdaRoute(self.handlers, self.running_as)
        self.functions: dict[str, DeployedFunction] = {}
        self.sm_policy = None  # the state machine role's S3 policy (set with the deployment)
        self.deployment: Deployment | None = None
        self._stack: contextlib.ExitStack | None = None
        self._pool = None

    # --- lifecycle --------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        """The process environment of the local run (each function's own comes from ``running_as``)."""
        env = {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "OMP_NUM_THREADS": str(self.threads),
        }
        if self.allow_loopback_webhooks:
            env[ALLOW_LOOPBACK_ENV] = "1"
        if self.quiet:
            env.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"))
            env.setdefault("POWERTOOLS_METRICS_DISABLED", os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"))
        return env

    _active: LocalRuntime | None = None  # moto's state is process-global: one runtime at a time

    def __enter__(self) -> LocalRuntime:
        import importlib

        from .workers import RenderPool, pooled_render_handler

        if LocalRuntime._active is not None:
            raise RuntimeError("another LocalRuntime is active in this process; moto's world is global, use one at a time")
        LocalRuntime._active = self
        before = set(threading.enumerate())
        self._stack = contextlib.ExitStack()
        self._stack.callback(lambda: setattr(LocalRuntime, "_active", None))
        try:
            self._stack.enter_context(mock.patch.dict(os.environ, self._env()))
            for name in _FUNCTION_ONLY_ENV:  # restored with the rest of os.environ on exit
                os.environ.pop(name, None)
            for _placeholder, (fname, module) in LAMBDAS.items():
                self.handlers.setdefault(fname, importlib.import_module(module).handler)
            for contract in (STARTER, ADMIT, NOTIFY):
                self.handlers.setdefault(local_name(contract),
                                         importlib.import_module(contract.handler.rsplit(".", 1)[0]).handler)
            if self.workers > 1:
                self._pool = RenderPool(self.workers, self.threads, self._env())
                self._stack.callback(self._pool.shutdown)
                self.handlers[LAMBDAS["RenderChunkFunctionArn"][0]] = pooled_render_handler(self._pool)
            else:
                import torch

                torch.set_num_threads(self.threads)
            module, func = task_entrypoint().split(":")
            self.ecs_tasks.setdefault(TASK_FAMILY, getattr(importlib.import_module(module), func))
            self._stack.enter_context(
                patched_moto(self.route, self.ecs_tasks, self.retry_time_scale, ecs_around=self.running_as,
                             sm_policy=lambda bucket: self.sm_policy if bucket == self.bucket else None)
            )
            self._stack.callback(self._drain, before)
            self.deployment = self._deploy()
            self._stack.enter_context(self.notifications.delivering())
            if self.s3_drop:
                self._stack.enter_context(self._admission_poller())
        except BaseException:
            self._stack.close()
            raise
        return self

    def _drain(self, before: set[threading.Thread]) -> None:
        """Stop what still runs and wait (bounded) for moto's execution threads. They are daemon threads: one
        still inside a handler at interpreter exit is killed by a forced unwind, and native code that catches
        it (safetensors' Rust loader) aborts the process - pytest would exit 134 after every test passed."""
        if self.deployment is not None:
            sfn = self.client("stepfunctions")
            for ex in self.executions():
                if ex["status"] == "RUNNING":
                    with contextlib.suppress(Exception):
                        sfn.stop_execution(executionArn=ex["executionArn"], cause="the local runtime is closing")
        until = time.monotonic() + DRAIN_S
        for t in threading.enumerate():
            target = getattr(t, "_target", None)  # only moto's workers: a pool's manager thread ends later
            if t not in before and t.daemon and str(getattr(target, "__module__", "")).startswith("moto."):
                t.join(timeout=max(0.0, until - time.monotonic()))

    def __exit__(self, *exc: Any) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    # --- the deployed configuration, enforced -------------------------------------------------------------
    def deployed_values(self, state_machine_arn: str | None = None) -> dict[Deployed, str]:
        values = {Deployed.BUCKET: self.bucket, Deployed.WEIGHTS: self.weights_dir or WEIGHTS_NOT_SET,
                  Deployed.ADMISSION_QUEUE: self.queue_url, Deployed.SETTLE_SECONDS: str(self.settle_seconds),
                  Deployed.MAX_RUNNING_JOBS: str(self.max_running_jobs),
                  Deployed.FINALIZE_VCPUS: f"{self.finalize_vcpus:g}", Deployed.MAX_CLIP_SECONDS: f"{self.max_clip_seconds:g}"}
        if state_machine_arn:
            values[Deployed.STATE_MACHINE] = state_machine_arn
        if self.enhance_range_seconds is not None:  # small ranges: several range tasks for a short clip
            values[Deployed.ENHANCE_RANGE_SECONDS] = f"{self.enhance_range_seconds:g}"
        if self.notifications is not None:
            values.update(self.notifications.deployed_values())
        return values

    def _configure(self, state_machine_arn: str) -> None:
        values = self.deployed_values(state_machine_arn)
        self.functions = from_template(self.template, values) if self.template is not None else from_contract(values)
        self.sm_policy = state_machine_policy(self.template, values)

    def context(self, name: str, env: dict[str, str] | None = None) -> FunctionContext:
        """How the function (contract name) runs here: its deployed environment and S3 policy."""
        fn = self.functions[name]
        return FunctionContext(name, dict(env if env is not None else fn.env), fn.policy)

    def running_as(self, local: str) -> contextlib.AbstractContextManager:
        """The route's hook: a call of the local function (or task family) ``local``."""
        contract = _BY_LOCAL_NAME.get(local)
        if contract is None:
            return contextlib.nullcontext()
        return running_as(self.context(contract.name))

    def call(self, local: str, event: Any) -> Any:
        """Invoke a function's handler directly (no state machine), as that function: its environment
        and S3 policy, like ``lambda:invoke`` would."""
        with self.running_as(local):
            return self.handlers[local](event, None)

    # --- resources ----------------------------------------------------------------------------------------
    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=REGION)

    def _deploy(self) -> Deployment:
        iam, s3, lam, ec2, ecs, sfn = (self.client(s) for s in ("iam", "s3", "lambda", "ec2", "ecs", "stepfunctions"))
        role = iam.create_role(RoleName="sadtalker-local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        s3.create_bucket(Bucket=self.bucket)
        subs: dict[str, str] = {}
        names: dict[str, str] = {}

        def function(contract: FunctionContract) -> str:
            return lam.create_function(
                FunctionName=local_name(contract), Role=role, PackageType="Image", MemorySize=contract.memory_mb,
                Timeout=contract.timeout_s, Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sadtalker:local"},
                ImageConfig={"Command": [contract.handler]},
            )["FunctionArn"]

        for placeholder, contract in TASK_STATE_FUNCTIONS.items():
            subs[placeholder] = function(contract)
            names[placeholder] = local_name(contract)
        starter_arn = function(STARTER)
        function(ADMIT)
        notify_arn = function(NOTIFY)
        # VisibilityTimeout: how soon a job refused for capacity is offered again (60 s on AWS)
        self.queue_url = self.client("sqs").create_queue(
            QueueName=ADMISSION_QUEUE, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
        self._configure(state_machine_arn="")  # the task definition's environment comes from it
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        for i in (1, 2):
            subs[f"SubnetId{i}"] = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        subs["EnhanceSecurityGroupId"] = ec2.create_security_group(
            GroupName="sadtalker-enhance", Description="enhancement task", VpcId=vpc
        )["GroupId"]
        subs["ClusterArn"] = ecs.create_cluster(clusterName="sadtalker")["cluster"]["clusterArn"]
        subs["EnhanceTaskDefinitionArn"] = ecs.register_task_definition(
            family=TASK_FAMILY, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="16384", memory="65536",
            # moto's run_task needs container-level cpu/memory
            containerDefinitions=[{"name": TASK_CONTAINER, "image": "sadtalker-enhance:local", "essential": True,
                                   "cpu": 16384, "memory": 65536,
                                   "environment": [{"name": k, "value": v}
                                                   for k, v in self.functions[TASK.name].env.items()],
                                   "command": ["python", "-m", task_entrypoint().split(":")[0]]}],
        )["taskDefinition"]["taskDefinitionArn"]
        subs["EnhanceContainerName"] = TASK_CONTAINER
        subs["RenderMaxConcurrency"] = str(self.max_concurrency)
        definition = substitute(asl_path().read_text(), subs)
        sm = sfn.create_state_machine(name=STATE_MACHINE_NAME, definition=definition, roleArn=role)["stateMachineArn"]
        self.notifications = LocalNotifications.deploy(self.client, notify_arn, sm)
        self._configure(state_machine_arn=sm)
        if self.s3_drop:
            s3.put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            ev = self.client("events")
            ev.put_rule(Name="sadtalker-inbox", EventPattern=json.dumps({
                "source": ["aws.s3"], "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [self.bucket]}, "object": {"key": [{"prefix": INBOX}]}},
            }))
            ev.put_targets(Rule="sadtalker-inbox", Targets=[{"Id": "starter", "Arn": starter_arn}])
        return Deployment(self.bucket, sm, subs, names)

    def admit_queued(self) -> list[dict]:
        """One pass of Lambda's SQS event source for admit_job: each visible message in its own invocation;
        a message whose record is reported failed (or whose invocation fails) stays for the queue's
        visibility timeout. Returns what admit_job did with each admitted message."""
        sqs, replies = self.client("sqs"), []
        for msg in sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            record = {"messageId": msg["MessageId"], "receiptHandle": msg["ReceiptHandle"], "body": msg["Body"],
                      "eventSource": "aws:sqs"}
            headers: dict[str, str] = {}
            out = json.loads(self.route(ADMIT_FUNCTION, json.dumps({"Records": [record]}).encode(), headers))
            replies += out.get("admitted", [])
            if "x-amz-function-error" not in headers and not out.get("batchItemFailures"):
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        return replies

    def _admission_poller(self) -> contextlib.AbstractContextManager:
        """``admit_queued`` in a loop, while the runtime is open (an S3-drop runtime)."""
        return polling(self.admit_queued, 0.05, "admission-poller", join_s=30)

    # --- jobs -------------------------------------------------------------------------------------------------
    def upload_inputs(self, job_id: str, image: Path, audio: Path, params: dict | None = None) -> tuple[str, str]:
        """Copy the inputs to inbox/<job>/ (params.json first, as the S3-drop contract asks)."""
        s3 = self.client("s3")
        job = JobKeys(job_id)
        if params is not None:
            s3.put_object(Bucket=self.bucket, Key=job.params_file, Body=json.dumps(params).encode())
        image_key = job.inbox + "image" + Path(image).suffix.lower()
        audio_key = job.inbox + "speech" + Path(audio).suffix.lower()
        s3.put_object(Bucket=self.bucket, Key=image_key, Body=Path(image).read_bytes())
        s3.put_object(Bucket=self.bucket, Key=audio_key, Body=Path(audio).read_bytes())
        return image_key, audio_key

    def start(self, job_id: str, image: Path, audio: Path, params: dict | None = None) -> str:
        image_key, audio_key = self.upload_inputs(job_id, image, audio, None)
        return self.start_execution(job_id, {
            "image": f"s3://{self.bucket}/{image_key}", "audio": f"s3://{self.bucket}/{audio_key}",
            "params": params or {},
        })

    def start_execution(self, name: str, job_input: dict) -> str:
        assert self.deployment is not None, "use LocalRuntime as a context manager"
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.deployment.state_machine_arn, name=name, input=json.dumps(job_input)
        )["executionArn"]

    def executions(self) -> list[dict]:
        assert self.deployment is not None
        return self.client("stepfunctions").list_executions(
            stateMachineArn=self.deployment.state_machine_arn)["executions"]

    def follow(self, arn: str, on_event: Callable[[dict], None] | None = None, poll: float = 0.1,
               timeout: float | None = None, on_tick: Callable[[], None] | None = None) -> dict:
        """Wait for the execution to end, calling ``on_event`` for every new history event and ``on_tick``
        on every poll (Distributed Map children write no events here); returns describe."""
        sfn = self.client("stepfunctions")
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if on_event is not None:
                events = self.history(arn)
                for e in events[seen:]:
                    on_event(e)
                seen = len(events)
            if on_tick is not None:
                on_tick()
            if desc["status"] != "RUNNING":
                return desc
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"execution {arn} still running after {timeout} s")
            time.sleep(poll)

    def wait(self, arn: str, timeout: float | None = None) -> dict:
        return self.follow(arn, None, timeout=timeout)

    def history(self, arn: str) -> list[dict]:
        sfn = self.client("stepfunctions")
        events: list[dict] = []
        kw: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kw)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kw["nextToken"] = page["nextToken"]

    def get(self, key: str) -> bytes:
        return self.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        return key in self.keys(key)

    def keys(self, prefix: str = "") -> list[str]:
        from ..storage import S3Storage

        return S3Storage(self.bucket, self.client("s3")).list(prefix)


def state_durations(events: list[dict]) -> list[tuple[str, float]]:
    """(state name, seconds) for every StateEntered/StateExited pair, in exit order."""
    opened: dict[str, list] = {}
    rows = []
    for e in events:
        t = e["type"]
        if t.endswith("StateEntered"):
            opened.setdefault(e["stateEnteredEventDetails"]["name"], []).append(e["timestamp"])
        elif t.endswith("StateExited"):
            name = e["stateExitedEventDetails"]["name"]
            if opened.get(name):
                rows.append((name, (e["timestamp"] - opened[name].pop(0)).total_seconds()))
    return rows


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(**kwargs) as rt:
        yield rt

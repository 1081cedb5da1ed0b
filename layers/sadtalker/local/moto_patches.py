"""Every change this project makes to moto, in one place (moto is pinned: exactly ``MOTO_VERSION``).

moto's Step Functions interpreter (LocalStack's, vendored) runs our real ASL. What it cannot do by
itself, and how each gap is closed (tests/pipeline/test_moto_canaries.py fails loudly when a moto
upgrade changes any of these):

1. ``lambda:invoke`` - moto's simple Lambda backend echoes the payload. We route the call to an
   in-process Python handler and wrap a raised exception in the Lambda runtime's error envelope
   (``x-amz-function-error`` + ``{"errorType", "errorMessage"}``) so Retry/Catch see our error names.
   A result over the 256 KB state-data limit fails the call.
2. ``ecs:runTask(.sync)`` - moto creates a task that never runs nor stops. We run the container's
   Python entrypoint ``main(env) -> exit code`` synchronously, then mark the task STOPPED with that
   exit code (what the .sync poller waits for). Container overrides over ECS's 8,192 characters are
   refused (InvalidParameterException), as ECS does.
3. ECS parameter casing - moto stubs ``StateTaskService._normalise_parameters/_response`` (no-ops), so
   ``LaunchType``-style ASL keys reach botocore's camelCase ECS API and fail. We convert both ways
   using botocore's own operation shapes.
4. ``NetworkInterface.private_dns_name`` - missing in moto's EC2 model, read by ECS awsvpc tasks.
5. EventBridge rule targets - ``Rule.send_to_targets`` has no Lambda/Step Functions branch (S3 ->
   EventBridge notifications then fail silently). We deliver to Lambda targets (through patch 1)
   and start executions for Step Functions targets.
6. Retry intervals are real ``time.sleep`` calls in moto's retrier: scaled by ``retry_time_scale``
   (0.01 by default locally) so a retried chunk does not stall a test for seconds.
7. ``ecs:runTask.sync`` on AWS fails the state with ``States.TaskFailed`` (the task description as the
   cause) when an essential container exits non-zero or never ran; moto's resolver returns the stopped
   task as a success. We raise the same failure, so Retry/Catch see what AWS shows them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

MOTO_VERSION = "5.2.5"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def check_moto_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the local runtime is written against moto=={MOTO_VERSION} (its patches reach into moto internals) "
            f"but moto {moto.__version__} is installed: `pip install moto=={MOTO_VERSION}`"
        )


# --- 1. lambda:invoke -> Python handler ------------------------------------------------------------------
# Step Functions' limit on a state's input/output (a Lambda result becomes state data).
STATE_DATA_LIMIT = 256 * 1024
# ECS RunTask: the containerOverrides structure, as JSON, may hold at most this many characters.
CONTAINER_OVERRIDES_LIMIT = 8192


def _no_context(name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


class LambdaRoute:
    """Maps a function name to ``handler(event, context) -> JSON-able``.

    ``around(name)`` gives the context every call of that function runs in (the local runtime: its
    deployed environment and S3 policy). A result over the state-data limit fails the call, as the
    state's output would fail the execution on AWS."""

    def __init__(self, handlers: dict[str, Callable[[dict, Any], Any]],
                 around: Callable[[str], contextlib.AbstractContextManager] = _no_context):
        self.handlers = handlers
        self.around = around
        self.calls: list[tuple[str, float, float, str | None]] = []  # (name, t0, t1, error type)
        self._lock = threading.Lock()

    def __call__(self, function_name: str, body: Any, response_headers: dict) -> bytes:
        name = function_name.split(":")[6] if function_name.startswith("arn:") else function_name
        if name not in self.handlers:
            raise KeyError(f"no local handler is routed for Lambda function {name!r}")
        event = json.loads(body) if body else {}
        ctx = LocalLambdaContext(function_name=name)
        t0 = time.time()
        err = None
        try:
            with self.around(name):
                out = json.dumps(self.handlers[name](event, ctx))
            if len(out.encode()) > STATE_DATA_LIMIT:
                raise DataLimitExceeded(
                    f"{name} returned {len(out.encode())} bytes, over Step Functions' {STATE_DATA_LIMIT}-byte "
                    "state-data limit"
                )
        except Exception as exc:
            err = type(exc).__name__
            response_headers["x-amz-function-error"] = "Unhandled"
            out = json.dumps({"errorType": err, "errorMessage": str(exc),
                              "stackTrace": traceback.format_tb(exc.__traceback__)})
        finally:
            with self._lock:
                self.calls.append((name, t0, time.time(), err))
        return out.encode()


class DataLimitExceeded(Exception):
    """A payload over a Step Functions or ECS size limit (AWS would refuse it the same way)."""


class LocalLambdaContext:
    """The attributes of a Lambda context object the handlers and powertools read.

    No timeout by default: this machine is not the 6-vCPU Lambda the timeouts are sized for, so a local
    chunk may take longer than a deployed one (the deadline logic itself is unit-tested)."""

    def __init__(self, function_name: str, timeout_s: float = 7 * 24 * 3600.0):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 10240
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = f"local-{time.monotonic_ns()}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)


def _lambda_invoke_patch(route: LambdaRoute):
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        backend.get_function(function_name, qualifier)  # ResourceNotFound like AWS for unknown functions
        return route(function_name, body, response_headers)

    return mock.patch.object(LambdaSimpleBackend, "invoke", invoke)


# --- 2. ecs:runTask -> container entrypoint ---------------------------------------------------------------
def _ecs_run_task_patch(tasks: dict[str, Callable[[dict[str, str]], int]],
                        around: Callable[[str], contextlib.AbstractContextManager] = _no_context):
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task

    def run_task(backend, *args, **kwargs):
        overrides = kwargs.get("overrides", args[3] if len(args) > 3 else None) or {}
        size = len(json.dumps(overrides.get("containerOverrides") or [], separators=(",", ":")))
        if size > CONTAINER_OVERRIDES_LIMIT:
            raise InvalidParameterException(
                f"Container Overrides length must be at most {CONTAINER_OVERRIDES_LIMIT} (got {size})"
            )
        created = original(backend, *args, **kwargs)
        for task in created:
            family = task.task_definition_arn.rsplit("/", 1)[-1].split(":")[0]
            env: dict[str, str] = {}
            tdef = backend.describe_task_definition(task.task_definition_arn)
            for e in tdef.container_definitions[0].get("environment") or []:
                env[e["name"]] = e["value"]
            for co in task.overrides.get("containerOverrides", []):
                env.update({e["name"]: e["value"] for e in co.get("environment", [])})
            try:
                with around(family):
                    code = int(tasks[family](env))
                reason = "Essential container in task exited"
            except Exception as exc:  # a crash of the entrypoint is a container exit 1
                code, reason = 1, f"{type(exc).__name__}: {exc}"
            task.containers[0].exitCode = code
            task.containers[0].last_status = "STOPPED"
            task.stopped_reason = reason
            task.desired_status = "STOPPED"
            task.last_status = "STOPPED"
        return created

    return mock.patch.object(EC2ContainerServiceBackend, "run_task", run_task)


# --- 3. ECS casing ----------------------------------------------------------------------------------------
def _norm(k: str) -> str:
    return k.replace("_", "").lower()


def _to_boto(value: Any, shape: Any) -> Any:
    from botocore.model import ListShape, MapShape, StructureShape

    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {_norm(k): (k, s) for k, s in shape.members.items()}
        out = {}
        for k, v in value.items():
            if _norm(k) in members:
                real, sub = members[_norm(k)]
                out[real] = _to_boto(v, sub)
            else:
                out[k] = v
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_to_boto(v, shape.member) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: _to_boto(v, shape.value) for k, v in value.items()}
    return value


def _to_sfn(value: Any) -> Any:
    """botocore camelCase -> the PascalCase Step Functions shows for ECS results."""
    if isinstance(value, dict):
        return {(k[:1].upper() + k[1:]): _to_sfn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_sfn(v) for v in value]
    return value


_OPS: dict[tuple[str, str], Any] = {}


def _operation(service: str, action: str):
    key = (service, action)
    if key not in _OPS:
        import botocore.session

        model = botocore.session.get_session().get_service_model(service)
        _OPS[key] = model.operation_model("".join(p.capitalize() for p in action.split("_")))
    return _OPS[key]


def _ecs_casing_patches() -> list:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
        new = _to_boto(dict(parameters), op.input_shape)
        parameters.clear()
        parameters.update(new)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        new = _to_sfn(dict(response))
        response.clear()
        response.update(new)

    return [
        mock.patch.object(StateTaskServiceEcs, "_normalise_parameters", normalise_parameters),
        mock.patch.object(StateTaskServiceEcs, "_normalise_response", normalise_response),
    ]


# --- 4. ENI private DNS name ---------------------------------------------------------------------------------
def _eni_patch():
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    prop = property(lambda self: "ip-" + str(self.private_ip_address).replace(".", "-") + ".ec2.internal")
    return mock.patch.object(NetworkInterface, "private_dns_name", prop, create=True)


# --- 5. EventBridge -> Lambda / Step Functions targets -----------------------------------------------------------
def _eventbridge_patch():
    from moto.events.models import Rule
    from moto.events.notifications import _invoke_lambda, _start_sfn_execution
    from moto.events.utils import EventTemplateParser

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in ("lambda", "states")]
        for t in ours:
            tr = t.get("InputTransformer")
            event = (
                EventTemplateParser.parse(input_template=tr.get("InputTemplate"),
                                          input_paths_map=tr.get("InputPathsMap", {}), event=original_event)
                if transform_input and tr else dict(original_event)
            )
            if t["Arn"].split(":")[2] == "lambda":
                _invoke_lambda(self.account_id, fn_arn=t["Arn"], event=event)
            else:
                _start_sfn_execution(self.account_id, self.region_name, t["Arn"], event)
        rest = [t for t in self.targets if t not in ours]
        if rest:
            saved = self.targets
            self.targets = rest
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = saved

    return mock.patch.object(Rule, "send_to_targets", send_to_targets)


# --- 6. Retry sleeps -----------------------------------------------------------------------------------------------
def _retry_sleep_patch(scale: float):
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    shim.sleep = lambda seconds: time.sleep(max(0.0, float(seconds)) * scale)
    return mock.patch.object(retrier_decl, "time", shim)


# --- 7. runTask.sync fails on a non-zero exit ---------------------------------------------------------------------
def _ecs_sync_failure_patch():
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    original = StateTaskServiceEcs._build_sync_resolver

    def build_sync_resolver(self, env, *args, **kwargs):
        resolve = original(self, env, *args, **kwargs)

        def resolver():
            task = resolve()
            if task is None:
                return None
            codes = [c.get("ExitCode") for c in task.get("Containers", [])]
            if codes and all(code == 0 for code in codes):
                return task
            raise FailureEventException(FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(), cause=to_json_str(task),
                )),
            ))

        return resolver

    return mock.patch.object(StateTaskServiceEcs, "_build_sync_resolver", build_sync_resolver)


@contextlib.contextmanager
def patched_moto(
    lambdas: LambdaRoute,
    ecs_tasks: dict[str, Callable[[dict[str, str]], int]],
    retry_time_scale: float = 0.01,
    ecs_around: Callable[[str], contextlib.AbstractContextManager] = _no_context,
) -> Iterator[None]:
    """All patches + moto's mock, active together for the duration of the block."""
    from moto import mock_aws

    check_moto_version()
    patches = [
        _lambda_invoke_patch(lambdas),
        _ecs_run_task_patch(ecs_tasks, ecs_around),
        *_ecs_casing_patches(),
        _eni_patch(),
        _eventbridge_patch(),
        _retry_sleep_patch(retry_time_scale),
        _ecs_sync_failure_patch(),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        stack.enter_context(mock_aws(config=MOTO_CONFIG))
        yield

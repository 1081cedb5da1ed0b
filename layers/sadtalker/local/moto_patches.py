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
8. Distributed Map (moto runs the child workflows in-process, which we keep):
   a. moto ignores ToleratedFailureCount/Percentage: a failed child leaves a ``null`` in the output and
      the Map succeeds. We fail the Map with ``States.ExceedToleratedFailureThreshold`` when the failed
      children exceed the tolerance, as AWS does.
   b. moto evaluates the ResultWriter's Parameters against the Map's output instead of the state's
      input, and writes a manifest that lists no result files. We evaluate them on the state input and
      write what AWS writes: ``<Prefix>/<map run id>/manifest.json`` and ``SUCCEEDED_0.json`` /
      ``FAILED_0.json`` (one entry per child: Input, Output or Error/Cause, Status, as JSON strings),
      also when the tolerance was exceeded (so the failed children can be read after the Map failed).
   c. ItemReader (s3:getObject) and ResultWriter (s3:putObject) calls are made with the state machine
      role's S3 policy (``sm_policy``): a key outside it fails the Map with States.ItemReaderFailed /
      States.ResultWriterFailed, as the 403 does on AWS.
   (moto's parser also refuses an integer ``ToleratedFailurePercentage``: the ASL uses
   ``ToleratedFailureCount`` 0, the same rule.)
9. ``ecs:runTask.sync`` retried: moto also waits for a task-token callback beside the ECS poll, on an
   endpoint keyed by the state's task token, which a retry reuses after the first attempt interrupted it;
   the wait then returns at once and the retried task "times out" (States.Timeout) unless it stops
   within one poll. A .sync task has no token to wait for: the ECS poll alone decides, as on AWS.
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


# --- 8. Distributed Map: tolerance, ResultWriter, the state machine role's S3 policy -------------------------------
EXCEEDED_CAUSE = "The specified tolerance threshold for the Map Run has been exceeded."
_RESULTS_ATTR = "_sadtalker_child_results"


def _failure(env, typ, cause: str):
    from moto.stepfunctions.parser.api import EvaluationFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEventException(FailureEvent(
        env=env, error_name=StatesErrorName(typ=typ), event_type=HistoryEventType.EvaluationFailed,
        event_details=EventDetails(evaluationFailedEventDetails=EvaluationFailedEventDetails(
            error=typ.to_name(), cause=cause)),
    ))


def exceeds_tolerance(failed: int, total: int, count: int, percentage: float) -> bool:
    """AWS: the Map Run fails when failed children exceed ToleratedFailureCount or the percentage."""
    return failed > count or (total > 0 and failed * 100.0 / total > percentage)


def _distributed_map_patches(sm_policy: Callable[[str], Any] | None) -> list:
    import copy

    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
        resource_eval_s3 as reader_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as dic,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as dipw,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import result_writer_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped, ProgramTimedOut
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    worker = dipw.DistributedItemProcessorWorker
    orig_input, orig_job, orig_map_run = worker._eval_input, worker._eval_job, dic.DistributedIterationComponent._map_run
    orig_state_eval = StateMap._eval_execution
    lock = threading.Lock()

    def eval_input(self, env_frame):
        orig_input(self, env_frame)
        env_frame._sadtalker_child_input = copy.deepcopy(env_frame.states.get_input())

    def eval_job(self, env, job):
        orig_job(self, env, job)
        state = env.program_state()
        entry: dict[str, Any] = {"Input": to_json_str(getattr(env, "_sadtalker_child_input", job.job_input)),
                                 "Index": job.job_index}
        if isinstance(state, ProgramError):
            err = state.error or {}
            entry.update(Status="FAILED", Error=err.get("error", "States.Runtime"), Cause=err.get("cause", ""))
        elif isinstance(state, ProgramTimedOut):
            entry.update(Status="TIMED_OUT", Error="States.Timeout", Cause="")
        elif isinstance(state, ProgramStopped):
            entry.update(Status="ABORTED", Error=state.error or "", Cause=state.cause or "")
        elif job.job_output is None:  # the worker caught an exception before the program ended
            entry.update(Status="FAILED", Error="States.Runtime", Cause="the child workflow did not end")
        else:
            entry.update(Status="SUCCEEDED", Output=to_json_str(job.job_output))
        with lock:
            getattr(self._map_run_record, _RESULTS_ATTR).append(entry)

    def map_run(self, env, eval_input):
        record = eval_input.map_run_record
        setattr(record, _RESULTS_ATTR, [])
        orig_map_run(self, env, eval_input)
        results = getattr(record, _RESULTS_ATTR)
        failed = sum(r["Status"] != "SUCCEEDED" for r in results)
        if exceeds_tolerance(failed, len(results), eval_input.tolerated_failure_count,
                             eval_input.tolerated_failure_percentage):
            env.stack.pop()  # the outputs: the state fails instead
            raise _failure(env, StatesErrorNameType.StatesExceedToleratedFailureThreshold, EXCEEDED_CAUSE)

    def state_eval(self, env):
        """Run the state; when its Map Run exceeded the tolerance, still export the results (then fail)."""
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException

        state_input = env.states.get_input()
        try:
            orig_state_eval(self, env)
        except FailureEventException as exc:
            pair = exc.extract_error_cause_pair() or (None, None)
            if self.result_writer is not None and pair[0] == "States.ExceedToleratedFailureThreshold":
                env.stack.append(None)
                _write_results(self.result_writer, env, state_input)
                env.stack.pop()
            raise

    def result_writer_body(self, env):
        env.stack.pop()  # moto's Map output; the files are written from the recorded child results
        env.stack.append(_write_results(self, env, env.states.get_input()))

    def _write_results(writer, env, state_input) -> dict:
        env.stack.append(state_input)
        writer.parargs.eval(env=env)
        params = env.stack.pop()
        env.stack.pop()
        bucket, prefix = params["Bucket"], params.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        record = env.map_run_record_pool_manager.get_all()[-1]
        base = prefix + record.map_run_arn.split(":")[-1] + "/"
        results = sorted(getattr(record, _RESULTS_ATTR, []), key=lambda r: r["Index"])
        files: dict[str, list] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        puts: list[tuple[str, bytes]] = []
        for status in ("SUCCEEDED", "FAILED"):
            rows = [{k: v for k, v in r.items() if k != "Index"} for r in results
                    if (r["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
            if rows:
                body = json.dumps(rows).encode()
                puts.append((f"{base}{status}_0.json", body))
                files[status].append({"Key": f"{base}{status}_0.json", "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
        puts.append((base + "manifest.json", json.dumps(manifest, indent=2).encode()))
        s3 = _s3()
        for key, body in puts:
            _allowed(env, "s3:PutObject", bucket, key, StatesErrorNameType.StatesResultWriterFailed)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        return {"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": base + "manifest.json"}}

    def _allowed(env, action: str, bucket: str, key: str, typ) -> None:
        policy = sm_policy(bucket) if sm_policy is not None else None
        if policy is not None and not policy.object_allowed(action, key):
            from sadtalker.storage import denial

            raise _failure(env, typ, denial(action, bucket, key))

    orig_get = reader_s3.ResourceEvalS3._handle_get_object

    def get_object(env, resource_runtime_part, state_credentials):
        params = env.stack[-1]
        _allowed(env, "s3:GetObject", params["Bucket"], params["Key"], StatesErrorNameType.StatesItemReaderFailed)
        orig_get(env, resource_runtime_part, state_credentials)

    return [
        mock.patch.object(worker, "_eval_input", eval_input),
        mock.patch.object(worker, "_eval_job", eval_job),
        mock.patch.object(dic.DistributedIterationComponent, "_map_run", map_run),
        mock.patch.object(StateMap, "_eval_execution", state_eval),
        mock.patch.object(result_writer_decl.ResultWriter, "_eval_body", result_writer_body),
        mock.patch.object(reader_s3.ResourceEvalS3, "_handle_get_object", staticmethod(get_object)),
    ]


def _s3():
    import boto3

    return boto3.client("s3", region_name="us-east-1")


# --- 9. runTask.sync waits for the task only -------------------------------------------------------------------------
def _ecs_sync_no_token_patch():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    original = StateTaskServiceEcs._eval_sync

    def eval_sync(self, env, sync_resolver, timeout_seconds, callback_endpoint, heartbeat_endpoint):
        return original(self, env=env, sync_resolver=sync_resolver, timeout_seconds=timeout_seconds,
                        callback_endpoint=None, heartbeat_endpoint=heartbeat_endpoint)

    return mock.patch.object(StateTaskServiceEcs, "_eval_sync", eval_sync)


@contextlib.contextmanager
def patched_moto(
    lambdas: LambdaRoute,
    ecs_tasks: dict[str, Callable[[dict[str, str]], int]],
    retry_time_scale: float = 0.01,
    ecs_around: Callable[[str], contextlib.AbstractContextManager] = _no_context,
    sm_policy: Callable[[str], Any] | None = None,
) -> Iterator[None]:
    """All patches + moto's mock, active together for the duration of the block. ``sm_policy(bucket)``:
    the state machine role's S3 policy (sadtalker.local.policy.S3Policy) or None to allow everything."""
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
        *_distributed_map_patches(sm_policy),
        _ecs_sync_no_token_patch(),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        stack.enter_context(mock_aws(config=MOTO_CONFIG))
        yield

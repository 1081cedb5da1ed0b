"""Canaries for layers/sadtalker/local/moto_patches.py: each fails loudly when a moto upgrade makes a
patch stop applying (the patched internals moved) or stop being needed (moto closed the gap)."""

from __future__ import annotations

import inspect
import json
import time

import pytest

from sadtalker.local import moto_patches as mp


def test_moto_is_the_pinned_version():
    import moto

    assert moto.__version__ == mp.MOTO_VERSION
    mp.check_moto_version()


def test_patched_internals_still_exist_with_the_expected_shape():
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ecs.models import EC2ContainerServiceBackend, Task
    from moto.events.models import Rule
    from moto.events.notifications import _invoke_lambda, _start_sfn_execution
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    assert list(inspect.signature(LambdaSimpleBackend.invoke).parameters) == [
        "self", "function_name", "qualifier", "body", "headers", "response_headers"]
    assert "overrides" in inspect.signature(EC2ContainerServiceBackend.run_task).parameters
    # the attributes the runTask patch sets to stop a task: moto's Task must still have them
    task_init = inspect.getsource(Task.__init__)
    for attr in ("containers", "stopped_reason", "desired_status"):
        assert f"self.{attr} =" in task_init, attr
    assert isinstance(Task.last_status, property) and Task.last_status.fset is not None
    assert callable(_invoke_lambda) and callable(_start_sfn_execution)
    assert "time.sleep(" in inspect.getsource(retrier_decl) and hasattr(retrier_decl, "time")
    # the gaps are still there (if moto fixed one, drop the patch instead of double-fixing)
    assert "_normalise_parameters" not in StateTaskServiceEcs.__dict__
    assert inspect.getsource(StateTaskService._normalise_parameters).rstrip().endswith("pass")
    assert not hasattr(NetworkInterface, "private_dns_name")
    sync = inspect.getsource(StateTaskServiceEcs._build_sync_resolver)
    assert "lastStatus" in sync and "xitCode" not in sync  # a stopped task is a success whatever it exited with
    src = inspect.getsource(Rule.send_to_targets)
    assert "NotImplementedError" in src and "lambda" not in src.split("NotImplementedError")[0].lower()


TINY_ASL = {
    "StartAt": "Call",
    "States": {
        "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                 "Parameters": {"FunctionName": "${Fn}", "Payload": {"n.$": "$.n"}},
                 "ResultSelector": {"value.$": "$.Payload.value"}, "ResultPath": "$.call",
                 "Retry": [{"ErrorEquals": ["TransientError"], "IntervalSeconds": 20, "MaxAttempts": 2,
                            "BackoffRate": 2.0}],
                 "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                 "Next": "Container"},
        "Container": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync",
                      "Parameters": {"LaunchType": "FARGATE", "Cluster": "${Cluster}", "TaskDefinition": "${TaskDef}",
                                     "NetworkConfiguration": {"AwsvpcConfiguration": {
                                         "Subnets": ["${Subnet}"], "SecurityGroups": ["${Sg}"]}},
                                     "Overrides": {"ContainerOverrides": [{"Name": "c", "Environment": [
                                         {"Name": "VALUE", "Value.$": "States.Format('{}', $.call.value)"}]}]}},
                      "ResultSelector": {"containers.$": "$.Containers", "first.$": "$.Containers[0].ExitCode"}, "ResultPath": "$.task",
                      "End": True},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
    },
}


@pytest.fixture
def tiny():
    import boto3

    from sadtalker.errors import TransientError

    attempts: list[int] = []
    seen_env: list[dict] = []

    def fn(event, ctx):
        attempts.append(event["n"])
        if len(attempts) == 1:
            raise TransientError("first call fails")
        if event["n"] < 0:
            raise ValueError("negative")
        return {"value": event["n"] * 2}

    def container(env):
        seen_env.append(env)
        return 1 if env["VALUE"] == "86" else 0  # the job with n = 43 crashes

    route = mp.LambdaRoute({"fn": fn, "hook": lambda e, c: attempts.append(-99) or {}})
    with mp.patched_moto(route, {"fam": container}, retry_time_scale=0.001):
        r = "us-east-1"
        iam, lam, ecs, ec2, sfn = (boto3.client(s, region_name=r) for s in ("iam", "lambda", "ecs", "ec2", "stepfunctions"))
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        mk = dict(Role=role, PackageType="Image", Code={"ImageUri": "1.dkr.ecr.us-east-1.amazonaws.com/x:1"})
        subs = {"Fn": lam.create_function(FunctionName="fn", **mk)["FunctionArn"]}
        lam.create_function(FunctionName="hook", **mk)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subs["Subnet"] = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        subs["Sg"] = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        subs["Cluster"] = ecs.create_cluster(clusterName="c")["cluster"]["clusterArn"]
        subs["TaskDef"] = ecs.register_task_definition(
            family="fam", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "c", "image": "i", "cpu": 256, "memory": 512,
                                   "environment": [{"name": "BASE", "value": "1"}]}])["taskDefinition"]["taskDefinitionArn"]
        from sadtalker.local.runtime import substitute

        sm = sfn.create_state_machine(name="tiny", roleArn=role,
                                      definition=substitute(json.dumps(TINY_ASL), subs))["stateMachineArn"]
        yield {"sfn": sfn, "sm": sm, "attempts": attempts, "env": seen_env, "route": route, "role": role}


def _run(t, n):
    arn = t["sfn"].start_execution(stateMachineArn=t["sm"], input=json.dumps({"n": n}))["executionArn"]
    for _ in range(600):
        d = t["sfn"].describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            return d
        time.sleep(0.05)
    raise AssertionError("tiny execution did not finish")


def test_lambda_route_retry_scaling_and_ecs_sync(tiny):
    t0 = time.monotonic()
    d = _run(tiny, 21)
    assert d["status"] == "SUCCEEDED", d
    assert time.monotonic() - t0 < 10, "retry interval (20 s) was not scaled"
    out = json.loads(d["output"])
    assert out["call"] == {"value": 42}  # lambda:invoke reached the Python handler, after one retry
    assert tiny["attempts"] == [21, 21]
    # ecs:runTask.sync ran main(env) and waited for STOPPED; the exit code reaches the state output
    assert [c["ExitCode"] for c in out["task"]["containers"]] == [0]
    # moto quirk the ASL avoids: an indexed path yields a list, where AWS yields the scalar
    assert out["task"]["first"] == [0]
    assert tiny["env"][0] == {"BASE": "1", "VALUE": "42"}  # PascalCase ASL -> ECS casing, env merged
    assert [c[3] for c in tiny["route"].calls] == ["TransientError", None]


def test_a_container_exiting_non_zero_fails_the_sync_task_as_on_aws(tiny):
    tiny["attempts"].append(0)  # skip the first-call failure
    d = _run(tiny, 43)
    assert d["status"] == "FAILED" and d["error"] == "States.TaskFailed", d
    assert '"ExitCode": 1' in d["cause"] and "Essential container in task exited" in d["cause"]


def test_error_envelope_reaches_catch_with_the_exception_name(tiny):
    tiny["attempts"].append(0)  # skip the first-call failure
    d = _run(tiny, -1)
    assert d["status"] == "FAILED" and d["error"] == "ValueError" and "negative" in d["cause"]


def test_s3_eventbridge_notification_reaches_a_lambda_target(tiny):
    import boto3

    s3, ev = boto3.client("s3", region_name="us-east-1"), boto3.client("events", region_name="us-east-1")
    s3.create_bucket(Bucket="bucket-canary")
    s3.put_bucket_notification_configuration(Bucket="bucket-canary", NotificationConfiguration={"EventBridgeConfiguration": {}})
    ev.put_rule(Name="r", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}))
    hook = boto3.client("lambda", region_name="us-east-1").get_function(FunctionName="hook")["Configuration"]
    ev.put_targets(Rule="r", Targets=[{"Id": "h", "Arn": hook["FunctionArn"]}])
    s3.put_object(Bucket="bucket-canary", Key="inbox/x/a.png", Body=b"x")
    assert -99 in tiny["attempts"], "the S3 -> EventBridge -> Lambda delivery did not happen"


def test_distributed_map_gaps_are_still_there():
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3 import (
        ResourceEvalS3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as dic,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as dipw,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import result_writer_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as writer_s3,
    )

    worker = dipw.DistributedItemProcessorWorker
    assert {"_eval_job", "_eval_pool"} <= set(worker.__dict__) and hasattr(worker, "_eval_input")
    assert "tolerated" not in inspect.getsource(dic.DistributedIterationComponent._map_run)  # tolerance ignored
    assert "TODO: generate result files" in inspect.getsource(writer_s3)  # an empty manifest
    assert "self.parargs.eval(env=env)" in inspect.getsource(result_writer_decl.ResultWriter._eval_body)
    assert isinstance(ResourceEvalS3.__dict__["_handle_get_object"], staticmethod)


DMAP_ASL = {"StartAt": "M", "States": {"M": {
    "Type": "Map",
    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                   "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"}},
    "ItemSelector": {"n.$": "$$.Map.Item.Value.start", "end.$": "$$.Map.Item.Value.end", "start.$": "$$.Map.Item.Value.start"},
    "MaxConcurrencyPath": "$.mc", "ToleratedFailureCount": 0,
    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "C",
                      "States": {"C": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                       "Parameters": {"FunctionName": "${Fn}", "Payload": {"n.$": "$.n"}},
                                       "ResultSelector": {"value.$": "$.Payload.value"}, "End": True}}},
    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                     "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "States.Format('work/{}/res/', $.job)"}},
    "ResultSelector": {"results.$": "$.ResultWriterDetails.Key"}, "ResultPath": "$.out", "End": True}}}


@pytest.fixture
def dmap():
    import boto3

    from sadtalker.local.policy import S3Policy
    from sadtalker.local.runtime import substitute

    def fn(event, ctx):
        if event["n"] == 20:
            raise ValueError("chunk twenty is bad")
        return {"value": event["n"] * 2}

    bucket = "bucket-dmap"
    allowed = [f"arn:aws:s3:::{bucket}/items/*", f"arn:aws:s3:::{bucket}/work/*/res/*"]
    policy = S3Policy(bucket, ({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": allowed},))
    with mp.patched_moto(mp.LambdaRoute({"fn": fn}), {}, retry_time_scale=0.001,
                         sm_policy=lambda b: policy if b == bucket else None):
        iam, lam, sfn, s3 = (boto3.client(s, region_name="us-east-1") for s in ("iam", "lambda", "stepfunctions", "s3"))
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        s3.create_bucket(Bucket=bucket)
        for name, starts in (("items/ok.json", (0, 10, 30)), ("items/bad.json", (0, 10, 20, 30)),
                             ("private/ok.json", (0,))):
            s3.put_object(Bucket=bucket, Key=name, Body=json.dumps([{"start": s, "end": s + 10} for s in starts]).encode())
        fn_arn = lam.create_function(FunctionName="fn", Role=role, PackageType="Image",
                                     Code={"ImageUri": "1.dkr.ecr.us-east-1.amazonaws.com/x:1"})["FunctionArn"]
        sm = sfn.create_state_machine(name="dmap", roleArn=role,
                                      definition=substitute(json.dumps(DMAP_ASL), {"Fn": fn_arn}))["stateMachineArn"]

        def run(key: str) -> dict:
            t = {"sfn": sfn, "sm": sm}
            arn = sfn.start_execution(stateMachineArn=sm, input=json.dumps(
                {"bucket": bucket, "key": key, "mc": 2, "job": key.replace("/", "-")}))["executionArn"]
            for _ in range(600):
                d = t["sfn"].describe_execution(executionArn=arn)
                if d["status"] != "RUNNING":
                    return d
                time.sleep(0.05)
            raise AssertionError("dmap execution did not finish")

        yield {"run": run, "s3": s3, "bucket": bucket}


def _results(dmap, key: str) -> dict[str, list]:
    s3, out = dmap["s3"], {}
    for obj in s3.list_objects_v2(Bucket=dmap["bucket"], Prefix=f"work/{key.replace('/', '-')}/res/").get("Contents", []):
        name = obj["Key"].rsplit("/", 1)[-1]
        out[name] = json.loads(s3.get_object(Bucket=dmap["bucket"], Key=obj["Key"])["Body"].read())
    return out


def test_distributed_map_reads_items_and_writes_results_from_the_state_input(dmap):
    d = dmap["run"]("items/ok.json")
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])["out"]
    assert out["results"].startswith("work/items-ok.json/res/") and out["results"].endswith("/manifest.json")
    files = _results(dmap, "items/ok.json")
    manifest = files.pop("manifest.json")
    assert [f["Key"].rsplit("/", 1)[-1] for f in manifest["ResultFiles"]["SUCCEEDED"]] == ["SUCCEEDED_0.json"]
    assert manifest["ResultFiles"]["FAILED"] == [] and set(files) == {"SUCCEEDED_0.json"}
    rows = files["SUCCEEDED_0.json"]
    assert [json.loads(r["Output"])["value"] for r in rows] == [0, 20, 60]
    assert [json.loads(r["Input"]) for r in rows][1] == {"n": 10, "start": 10, "end": 20}  # the ItemSelector output


def test_a_failed_child_fails_the_distributed_map_and_is_named_in_the_results(dmap):
    d = dmap["run"]("items/bad.json")
    assert d["status"] == "FAILED" and d["error"] == "States.ExceedToleratedFailureThreshold", d
    files = _results(dmap, "items/bad.json")
    assert set(files) == {"manifest.json", "SUCCEEDED_0.json", "FAILED_0.json"}  # exported although the Map failed
    (failed,) = files["FAILED_0.json"]
    assert json.loads(failed["Input"])["start"] == 20 and failed["Status"] == "FAILED"
    assert failed["Error"] == "ValueError" and "chunk twenty is bad" in failed["Cause"]
    assert len(files["SUCCEEDED_0.json"]) == 3


def test_the_state_machine_role_policy_guards_the_item_reader(dmap):
    d = dmap["run"]("private/ok.json")
    assert d["status"] == "FAILED" and d["error"] == "States.ItemReaderFailed", d
    assert "private/ok.json" in d["cause"] and "s3:GetObject" in d["cause"]


def test_a_retried_sync_task_waits_for_its_task_not_for_a_token():
    """Patch 9: the retry of a runTask.sync task that exited non-zero reuses the first attempt's (interrupted)
    callback endpoint; without the patch the second attempt fails as States.Timeout unless it stops at once."""
    import boto3

    from sadtalker.local.runtime import substitute

    src = inspect.getsource(mp._ecs_sync_no_token_patch)
    assert "callback_endpoint=None" in src
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback as cb

    assert "callback_endpoint is not None" in inspect.getsource(cb.StateTaskServiceCallback._eval_sync)  # the gap
    calls: list[int] = []

    def container(env):
        calls.append(1)
        if len(calls) == 1:
            return 137  # killed
        time.sleep(0.5)  # the retried task takes longer than one poll
        return 0

    asl = {"StartAt": "T", "States": {"T": dict(TINY_ASL["States"]["Container"], ResultSelector={"r.$": "$.StoppedReason"},
                                                Retry=[{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1,
                                                        "MaxAttempts": 1, "BackoffRate": 2.0}])}}
    asl["States"]["T"]["Parameters"] = json.loads(json.dumps(asl["States"]["T"]["Parameters"]).replace(
        '"Value.$": "States.Format(\'{}\', $.call.value)"', '"Value": "1"'))
    with mp.patched_moto(mp.LambdaRoute({}), {"fam": container}, retry_time_scale=0.001):
        r = "us-east-1"
        iam, ecs, ec2, sfn = (boto3.client(s, region_name=r) for s in ("iam", "ecs", "ec2", "stepfunctions"))
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subs = {"Subnet": ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"],
                "Sg": ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"],
                "Cluster": ecs.create_cluster(clusterName="c")["cluster"]["clusterArn"]}
        subs["TaskDef"] = ecs.register_task_definition(
            family="fam", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "c", "image": "i", "cpu": 256, "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
        sm = sfn.create_state_machine(name="retry", roleArn=role, definition=substitute(json.dumps(asl), subs))["stateMachineArn"]
        d = _run({"sfn": sfn, "sm": sm}, 0)
    assert d["status"] == "SUCCEEDED", d
    assert len(calls) == 2

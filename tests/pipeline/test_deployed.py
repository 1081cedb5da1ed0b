"""Deployed = tested: a local job runs with the synthesized stack's environments, S3 policies and limits.

The session's synthesized template (tests/conftest.py) is the source: what a function may read, write or
delete, and which variables it sees, are the template's, so a grant missing there fails the job here.
"""

from __future__ import annotations

import copy
import json
import os

import pytest

from cdk_template import function_by_handler, resources
from functions.contract import CONTRACTS, Deployed
from sadtalker.local import LocalRuntime
from sadtalker.local.deployed import from_contract, from_template
from sadtalker.local.moto_patches import CONTAINER_OVERRIDES_LIMIT, STATE_DATA_LIMIT, LambdaRoute

VALUES = {Deployed.BUCKET: "b-local", Deployed.WEIGHTS: "/weights", Deployed.STATE_MACHINE: "arn:aws:states:sm",
          Deployed.ADMISSION_QUEUE: "https://queue", Deployed.SETTLE_SECONDS: "1", Deployed.MAX_RUNNING_JOBS: "3",
          Deployed.FINALIZE_VCPUS: "4", Deployed.MAX_CLIP_SECONDS: "600",
          Deployed.NOTIFY_TOPIC: "arn:aws:sns:topic", Deployed.WEBHOOK_SECRET: "arn:aws:secretsmanager:secret",
          Deployed.LINK_EXPIRY: "3600", Deployed.ENHANCE_RANGE_SECONDS: "150"}
# every deployment value takes part in the comparison (the S3 weights prefix is not configured in this stack)
assert set(VALUES) == set(Deployed) - {Deployed.WEIGHTS_S3}


def _statements(fn) -> set[tuple]:
    def norm(v):
        return tuple(sorted(v)) if isinstance(v, list) else (v,)

    return {(st["Sid"], st["Effect"], norm(st["Action"]), norm(st["Resource"]), json.dumps(st.get("Condition")))
            for st in fn.policy.statements}


def test_the_template_deploys_exactly_what_the_contracts_declare(template):
    deployed, declared = from_template(template, VALUES), from_contract(VALUES)
    assert set(deployed) == set(declared) == set(CONTRACTS)
    for name in CONTRACTS:
        assert deployed[name].env == declared[name].env, name
        assert _statements(deployed[name]) == _statements(declared[name]), name
        if declared[name].timeout_s is not None:
            assert (deployed[name].timeout_s, deployed[name].memory_mb) == \
                   (declared[name].timeout_s, declared[name].memory_mb), name


def test_the_state_machine_role_has_exactly_the_declared_s3_access(template):
    """STATE_MACHINE_ACCESS (what the local runtime enforces on ItemReader/ResultWriter) is what the role
    grants; beyond it only ResultWriter's multipart actions on map results."""
    from types import SimpleNamespace

    from sadtalker.local.deployed import state_machine_policy

    deployed, declared = state_machine_policy(template, VALUES), state_machine_policy(None, VALUES)
    extra = _statements(SimpleNamespace(policy=deployed)) - _statements(SimpleNamespace(policy=declared))
    assert _statements(SimpleNamespace(policy=declared)) <= _statements(SimpleNamespace(policy=deployed))
    assert [(sid, actions) for sid, _, actions, _, _ in extra] == [
        ("ResultWriterUploads", ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"))]
    assert deployed.object_allowed("s3:GetObject", "work/j/chunk-items.json")
    assert deployed.object_allowed("s3:PutObject", "work/j/map-results/run/manifest.json")
    assert not deployed.object_allowed("s3:PutObject", "work/j/chunk-items.json")
    assert not deployed.object_allowed("s3:GetObject", "work/j/coeffs.npz")


def _without_grant(template: dict, handler: str, sid: str) -> dict:
    broken = copy.deepcopy(template)
    lid = function_by_handler(broken)[handler]
    role = broken["Resources"][lid]["Properties"]["Role"]["Fn::GetAtt"][0]
    removed = 0
    for res in resources(broken, "AWS::IAM::Policy").values():
        if {"Ref": role} in res["Properties"]["Roles"]:
            doc = res["Properties"]["PolicyDocument"]
            kept = [st for st in doc["Statement"] if st.get("Sid") != sid]
            removed += len(doc["Statement"]) - len(kept)
            doc["Statement"] = kept
    assert removed == 1
    return broken


@pytest.mark.job
def test_a_stage_without_its_write_grant_fails_the_job_with_access_denied(template, reduced_weights, media):
    broken = _without_grant(template, "functions.audio2coeff.handler", "WriteObjects")
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-denied", template=broken) as rt:
        desc = rt.wait(rt.start("denied", media["portrait"], media["short"], {}), timeout=600)
        rec = json.loads(rt.get("outputs/denied/error.json"))
        assert not rt.keys("work/denied/coeffs.npz") and not rt.keys("outputs/denied/video.mp4")
    assert desc["status"] == "FAILED" and desc["error"] == "AccessDenied"
    assert rec["error"] == "AccessDenied" and rec["state"] == "Audio2Coeff"
    assert "s3:PutObject on s3://sadtalker-denied/work/denied/coeffs.npz was denied" in rec["message"]


def test_each_handler_sees_only_its_functions_environment(reduced_weights, template):
    with LocalRuntime(reduced_weights, workers=0, template=template) as rt:
        assert "SADTALKER_BUCKET" not in os.environ and "SADTALKER_WEIGHTS" not in os.environ
        light, heavy = rt.context("validate_job").env, rt.context("render_chunk").env
        assert light["SADTALKER_BUCKET"] == rt.bucket and "SADTALKER_WEIGHTS" not in light
        assert heavy["SADTALKER_WEIGHTS"] == str(reduced_weights)
        assert rt.context("admit_job").env["SADTALKER_STATE_MACHINE_ARN"] == rt.deployment.state_machine_arn
        assert rt.context("starter").env["SADTALKER_ADMISSION_QUEUE_URL"] == rt.queue_url
        # the task definition the local Fargate task runs with carries the template's container environment
        tdef = rt.client("ecs").describe_task_definition(
            taskDefinition=rt.deployment.substitutions["EnhanceTaskDefinitionArn"])["taskDefinition"]
        env = {e["name"]: e["value"] for e in tdef["containerDefinitions"][0]["environment"]}
        assert env == rt.context("enhance_range_task").env


def test_results_over_the_state_data_limit_fail_the_call():
    route = LambdaRoute({"f": lambda event, ctx: {"blob": "x" * STATE_DATA_LIMIT}})
    headers: dict = {}
    body = json.loads(route("f", b"{}", headers))
    assert headers["x-amz-function-error"] == "Unhandled" and body["errorType"] == "DataLimitExceeded"


def test_container_overrides_over_ecs_limit_are_refused(reduced_weights):
    from botocore.exceptions import ClientError

    with LocalRuntime(reduced_weights, workers=0) as rt:
        subs = rt.deployment.substitutions
        run = dict(cluster=subs["ClusterArn"], taskDefinition=subs["EnhanceTaskDefinitionArn"], launchType="FARGATE",
                   networkConfiguration={"awsvpcConfiguration": {"subnets": [subs["SubnetId1"]]}})
        too_long = [{"name": "finalize", "environment": [{"name": "X", "value": "y" * CONTAINER_OVERRIDES_LIMIT}]}]
        with pytest.raises(ClientError, match="at most 8192"):
            rt.client("ecs").run_task(**run, overrides={"containerOverrides": too_long})


def _dashboard_metrics(template: dict) -> set[tuple[str, tuple]]:
    (dash,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dash["Properties"]["DashboardBody"]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in body["Fn::Join"][1])
    out = set()
    for widget in json.loads(text)["widgets"]:
        prev: list = []
        for m in widget.get("properties", {}).get("metrics", []):
            fields = [f for f in m if not isinstance(f, dict)]
            fields = [prev[i] if f == "." and i < len(prev) else f for i, f in enumerate(fields)]
            prev = fields
            if fields and fields[0] == "SadTalker":
                dims = tuple(sorted(zip(fields[2::2], fields[3::2], strict=True)))
                out.add((fields[1], dims))
    return out


@pytest.mark.job
def test_the_dashboard_charts_the_metrics_the_handlers_emit(reduced_weights, media, template, capfd, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-metrics", template=template) as rt:
        desc = rt.wait(rt.start("metrics", media["portrait"], media["short"], {}), timeout=600)
        failed = rt.wait(rt.start("metrics-failed", media["gradient"], media["short"], {}), timeout=600)
    assert desc["status"] == "SUCCEEDED" and failed["status"] == "FAILED", (desc, failed)  # RecordFailure ran too
    emitted = set()
    for line in capfd.readouterr().out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        rec = json.loads(line)
        for directive in rec["_aws"]["CloudWatchMetrics"]:
            for dim_set in directive["Dimensions"]:
                dims = tuple(sorted((d, rec[d] if d != "function_name" else "TOKEN") for d in dim_set))
                emitted |= {(m["Name"], dims) for m in directive["Metrics"]}
    charted = _dashboard_metrics(template)
    assert charted, "the dashboard charts no SadTalker metric"
    assert charted <= emitted, f"charted but never emitted: {sorted(charted - emitted)}"

"""CDK assertions on every resource of the stack (one synth per session, see conftest.py)."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from cdk_template import function_by_handler, object_patterns, resources, role_statements
from functions.contract import CONTRACTS, HANDLERS, HEAVY_FUNCTIONS, LIGHT_FUNCTIONS
from infra.config import DEFAULT_SIZES, DeployConfig


# --- cdk-nag / validation -----------------------------------------------------------------------------
def test_synth_passes_cdk_nag_with_zero_unacknowledged_findings(synthesized):
    assert synthesized.error is None, f"synth failed: {synthesized.error}"
    assert synthesized.report is not None, "no validation report: the AwsSolutions plugin did not run"
    plugins = {p["pluginName"]: p for p in synthesized.report["pluginReports"]}
    assert "AwsSolutions" in plugins
    findings = [(p, v["ruleName"], c["constructPath"]) for p, rep in plugins.items()
                for v in rep["violations"] for c in v["violatingConstructs"]]
    assert findings == [], "unacknowledged findings:\n" + "\n".join(map(str, findings))


def test_every_acknowledgment_carries_a_reason(synthesized):
    acks = {}
    for path, entries in synthesized.metadata.items():
        for e in entries:
            if e["type"] == "aws:cdk:acknowledged-rules":
                for rule, reason in e["data"].items():
                    acks[(path, rule)] = reason
    assert len(acks) >= 10
    nag = [k for k in acks if k[1].startswith("AwsSolutions::")]
    assert nag, "no cdk-nag acknowledgments recorded"
    for key, reason in acks.items():
        assert isinstance(reason, str) and len(reason.split()) >= 5, f"{key}: reason {reason!r} explains nothing"


# --- bucket ----------------------------------------------------------------------------------------------
def _job_bucket(template):
    buckets = resources(template, "AWS::S3::Bucket")
    (lid,) = [k for k, v in buckets.items() if "VersioningConfiguration" in v["Properties"]]
    return lid, buckets[lid]["Properties"]


def test_job_bucket_private_encrypted_versioned_logged_eventbridge(template):
    lid, props = _job_bucket(template)
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
    }
    enc = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert enc["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}
    log_bucket = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_bucket != lid and log_bucket in template["Resources"]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-work"]["Prefix"] == "work/"
    assert rules["expire-work"]["ExpirationInDays"] == DeployConfig().work_expiry_days
    # nothing expires the current versions of inbox/ or outputs/
    for r in rules.values():
        if "ExpirationInDays" in r:
            assert r.get("Prefix") == "work/", r


def test_every_bucket_denies_plain_http(template):
    policies = resources(template, "AWS::S3::BucketPolicy")
    covered = set()
    for pol in policies.values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false":
                assert st["Principal"] == {"AWS": "*"} and st["Action"] == "s3:*"
                covered.add(pol["Properties"]["Bucket"]["Ref"])
    assert covered == set(resources(template, "AWS::S3::Bucket"))
    # and no statement grants anything to everyone
    for pol in policies.values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Allow":
                assert st["Principal"] != {"AWS": "*"} and st["Principal"] != "*"


# --- functions -------------------------------------------------------------------------------------------
def test_one_function_per_task_state_sized_from_config(template):
    by_handler = function_by_handler(template)
    assert set(by_handler) == set(HANDLERS.values())
    fns = template["Resources"]
    for name in (*HEAVY_FUNCTIONS, *LIGHT_FUNCTIONS):
        props = fns[by_handler[HANDLERS[name]]]["Properties"]
        size = DEFAULT_SIZES[name]
        assert props["MemorySize"] == size.memory_mb, name
        assert props["Timeout"] == size.timeout_s, name
        assert props["EphemeralStorage"] == {"Size": size.ephemeral_mb}, name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        reserved = props.get("ReservedConcurrentExecutions")  # none by default (heavy: a parameter defaulting to 0)
        assert reserved is None or template["Parameters"][reserved["Fn::If"][2]["Ref"]]["Default"] == 0, name
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SadTalker"
        assert "Ref" in env["SADTALKER_BUCKET"]


def test_heavy_functions_get_their_roles_image_with_their_handler_as_cmd(template, synthesized):
    """One image per weights role (infra/images/select_weights.py): the render image without the
    enhancers, the Fargate finalize image with them; functions of one role share their image."""
    from infra.components.functions import IMAGE_ROLES

    by_handler = function_by_handler(template)
    image_of_role: dict[str, set[str]] = {}
    for name in HEAVY_FUNCTIONS:
        props = template["Resources"][by_handler[HANDLERS[name]]]["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [HANDLERS[name]]
        image_of_role.setdefault(IMAGE_ROLES[name], set()).add(json.dumps(props["Code"]["ImageUri"], sort_keys=True))
        assert props["Environment"]["Variables"]["SADTALKER_WEIGHTS"] == "/opt/sadtalker/weights"
        assert "SADTALKER_WEIGHTS_S3" not in props["Environment"]["Variables"]
    assert all(len(uris) == 1 for uris in image_of_role.values()), image_of_role
    assert len({u for uris in image_of_role.values() for u in uris}) == len(image_of_role)
    assets = json.loads((synthesized.outdir / f"{synthesized.stack.stack_name}.assets.json").read_text())
    docker = list(assets["dockerImages"].values())
    built = sorted((d["source"].get("dockerBuildTarget"), d["source"]["dockerBuildArgs"]["WEIGHTS_ROLE"]) for d in docker)
    assert built == [("fargate", "enhance"), ("lambda", "audio2coeff"), ("lambda", "none"), ("lambda", "preprocess"),
                     ("lambda", "render")]
    assert IMAGE_ROLES["render_chunk"] == "render" and IMAGE_ROLES["enhance_range_task"] == "enhance"
    for d in docker:
        assert d["source"]["dockerFile"] == "functions/Dockerfile"
        assert d["source"]["platform"] == "linux/amd64"
        assert d["source"]["dockerBuildArgs"]["WEIGHTS_SOURCE"] == "image"


def test_light_functions_are_zip_python312_with_the_deps_layer(template, synthesized):
    by_handler = function_by_handler(template)
    layers = resources(template, "AWS::Lambda::LayerVersion")
    assert len(layers) == 1
    (layer_id,) = layers
    for name in LIGHT_FUNCTIONS:
        props = template["Resources"][by_handler[HANDLERS[name]]]["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Handler"] == HANDLERS[name]
        assert props["Layers"] == [{"Ref": layer_id}]
        assert "S3Key" in props["Code"]
    # the zip assets are plain files, staged without Docker: library + handlers, and python/ deps
    assets = json.loads((synthesized.outdir / f"{synthesized.stack.stack_name}.assets.json").read_text())
    dirs = [synthesized.outdir / f["source"]["path"] for f in assets["files"].values() if f["source"]["packaging"] == "zip"]
    code = [d for d in dirs if (d / "functions" / "starter.py").is_file()]
    deps = [d for d in dirs if (d / "python" / "pydantic").is_dir()]
    assert len(code) == 1 and len(deps) == 1
    assert (code[0] / "sadtalker" / "jobs.py").is_file()
    assert not (deps[0] / "python" / "torch").exists() and not (deps[0] / "python" / "botocore").exists()
    assert any(p.name.startswith("numpy") for p in (deps[0] / "python").iterdir())


# --- IAM ---------------------------------------------------------------------------------------------------
def test_no_wildcard_actions_anywhere(template):
    for lid, res in template["Resources"].items():
        docs = []
        if res["Type"] == "AWS::IAM::Policy":
            docs.append(res["Properties"]["PolicyDocument"])
        if res["Type"] == "AWS::IAM::Role":
            docs += [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
            assert "ManagedPolicyArns" not in res["Properties"], f"{lid} uses a managed policy"
        for doc in docs:
            for st in doc["Statement"]:
                if st["Effect"] != "Allow":
                    continue
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                for a in actions:
                    assert "*" not in a, f"{lid}: wildcard action {a}"


def test_each_function_reaches_exactly_its_bucket_prefixes(template):
    _, bucket_props = _job_bucket(template)
    (bucket_id,) = [k for k, v in resources(template, "AWS::S3::Bucket").items() if v["Properties"] == bucket_props]
    by_handler = function_by_handler(template)
    for name, handler in HANDLERS.items():
        role = template["Resources"][by_handler[handler]]["Properties"]["Role"]["Fn::GetAtt"][0]
        reads, writes, deletes, other_s3 = set(), set(), set(), []
        for st in role_statements(template, role):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            for a in actions:
                if a == "s3:GetObject":
                    reads |= set(object_patterns(st["Resource"]))
                elif a == "s3:PutObject":
                    writes |= set(object_patterns(st["Resource"]))
                elif a == "s3:DeleteObject":
                    deletes |= set(object_patterns(st["Resource"]))
                elif a == "s3:ListBucket":
                    assert object_patterns(st["Resource"]) == [f"<{bucket_id}>"]
                    prefixes = st["Condition"]["StringLike"]["s3:prefix"]  # only what it may read
                    assert prefixes == list(CONTRACTS[name].access.read), name
                elif a.startswith("s3:"):
                    other_s3.append(a)
        assert other_s3 == [], f"{name}: unexpected S3 actions {other_s3}"
        access = CONTRACTS[name].access
        assert reads == {f"<{bucket_id}>/{p}" for p in access.read}, name
        assert writes == {f"<{bucket_id}>/{p}" for p in access.write}, name
        assert deletes == {f"<{bucket_id}>/{p}" for p in access.delete}, name
    # spot checks of the intent
    assert CONTRACTS["record_failure"].access.write == ("outputs/*/error.json",)
    assert not any(p.startswith("inbox/") for c in CONTRACTS.values() for p in (*c.access.write, *c.access.delete)), \
        "inputs are never modified"
    assert CONTRACTS["plan_chunks"].access.read == (), "PlanChunks reads nothing: its inputs come in the event"
    assert CONTRACTS["validate_job"].access.write == ("work/*/job.json", "work/*/timings/validate_job.json")


def test_log_permissions_are_limited_to_the_own_log_group(template):
    by_handler = function_by_handler(template)
    for handler, lid in by_handler.items():
        props = template["Resources"][lid]["Properties"]
        role = props["Role"]["Fn::GetAtt"][0]
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        sts = [s for s in role_statements(template, role) if any(str(a).startswith("logs:") for a in
               (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
        assert sts and all(s["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]} for s in sts), handler


# --- Fargate ------------------------------------------------------------------------------------------------
def test_enhance_task_definition(cdk_template, template):
    size = DeployConfig().finalize
    cdk_template.has_resource_properties("AWS::ECS::TaskDefinition", {
        "Cpu": str(size.cpu),
        "Memory": str(size.memory_mib),
        "EphemeralStorage": {"SizeInGiB": size.ephemeral_gib},
        "RequiresCompatibilities": ["FARGATE"],
        "NetworkMode": "awsvpc",
        "ContainerDefinitions": [Match.object_like({
            "Name": "enhance",
            "Essential": True,
            "Command": ["python", "-m", "functions.enhance_range"],
            "LogConfiguration": Match.object_like({"LogDriver": "awslogs"}),
        })],
    })
    cdk_template.has_resource_properties("AWS::ECS::Cluster", {
        "ClusterSettings": [{"Name": "containerInsights", "Value": Match.any_value()}]
    })


def test_vpc_is_isolated_without_nat_with_endpoints(template):
    assert not resources(template, "AWS::EC2::NatGateway")
    assert not resources(template, "AWS::EC2::InternetGateway")
    subnets = resources(template, "AWS::EC2::Subnet")
    assert len(subnets) == 2 and all(not s["Properties"].get("MapPublicIpOnLaunch") for s in subnets.values())
    endpoints = resources(template, "AWS::EC2::VPCEndpoint")
    kinds = {}
    for ep in endpoints.values():
        name = json.dumps(ep["Properties"]["ServiceName"])
        kinds[next(k for k in ("s3", "ecr.api", "ecr.dkr", "logs") if f".{k}" in name or f"{k}\"" in name)] = (
            ep["Properties"].get("VpcEndpointType", "Gateway"))
    assert kinds == {"s3": "Gateway", "ecr.api": "Interface", "ecr.dkr": "Interface", "logs": "Interface"}
    assert resources(template, "AWS::EC2::FlowLog")


def test_task_security_group_has_no_ingress(template):
    sgs = resources(template, "AWS::EC2::SecurityGroup")
    (task_sg,) = [k for k, v in sgs.items() if "finalize task: no ingress" in v["Properties"]["GroupDescription"]]
    assert "SecurityGroupIngress" not in sgs[task_sg]["Properties"]
    for ing in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        assert ing["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [task_sg, "GroupId"]}
        assert ing["Properties"]["FromPort"] == ing["Properties"]["ToPort"] == 443
    egress = sgs[task_sg]["Properties"]["SecurityGroupEgress"]
    assert all(e["FromPort"] == e["ToPort"] == 443 for e in egress)


# --- starter, alarms, dashboard, outputs ----------------------------------------------------------------
def test_s3_drop_rule_targets_the_starter_with_a_dead_letter_queue(template):
    by_handler = function_by_handler(template)
    starter = by_handler[HANDLERS["starter"]]
    # the S3 drop's rule (the notifications' rule is tests/infra/test_notifications.py's)
    (rule,) = [r for r in resources(template, "AWS::Events::Rule").values()
               if r["Properties"]["EventPattern"]["source"] == ["aws.s3"]]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "inbox/"}]
    bucket_id, _ = _job_bucket(template)
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": bucket_id}]
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [starter, "Arn"]}
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    # the starter only queues; admit_job starts (and counts) executions, fed by the admission queue
    env = template["Resources"][starter]["Properties"]["Environment"]["Variables"]
    queues = resources(template, "AWS::SQS::Queue")
    (admission,) = [q for q, r in queues.items() if "RedrivePolicy" in r["Properties"]]
    assert env["SADTALKER_ADMISSION_QUEUE_URL"] == {"Ref": admission} and "SADTALKER_STATE_MACHINE_ARN" not in env
    redrive = queues[admission]["Properties"]["RedrivePolicy"]
    dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dlq, "Arn"]}  # one dead-letter queue, alarmed
    (invoke_cfg,) = [c for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
                     if c["Properties"]["FunctionName"] == {"Ref": starter}]
    assert invoke_cfg["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq, "Arn"]}
    admit = by_handler[HANDLERS["admit_job"]]
    (mapping,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionName"] == {"Ref": admit}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == 1
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine")
    admit_env = template["Resources"][admit]["Properties"]["Environment"]["Variables"]
    assert admit_env["SADTALKER_STATE_MACHINE_ARN"] == {"Fn::GetAtt": [sm, "Arn"]}
    assert admit_env["SADTALKER_MAX_RUNNING_JOBS"] == {"Ref": "MaxRunningJobs"}
    role = template["Resources"][admit]["Properties"]["Role"]["Fn::GetAtt"][0]
    starts = [s for s in role_statements(template, role) if "states:StartExecution" in s["Action"]]
    assert [s["Resource"] for s in starts] == [{"Fn::GetAtt": [sm, "Arn"]}]
    starter_role = template["Resources"][starter]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert not any("states:" in json.dumps(s["Action"]) for s in role_statements(template, starter_role))


def test_alarms_on_failed_executions_and_throttles(template):
    alarms = list(resources(template, "AWS::CloudWatch::Alarm").values())
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine")
    failed = [a for a in alarms if a["Properties"].get("MetricName") == "ExecutionsFailed"]
    assert len(failed) == 1
    assert failed[0]["Properties"]["Namespace"] == "AWS/States"
    assert failed[0]["Properties"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Fn::GetAtt": [sm, "Arn"]}}]
    throttled = {a["Properties"]["Dimensions"][0]["Value"]["Ref"] for a in alarms
                 if a["Properties"].get("MetricName") == "Throttles"}
    assert throttled == set(resources(template, "AWS::Lambda::Function"))


def test_dashboard_shows_executions_stages_and_frames_per_second(template):
    (dash,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for needle in ("ExecutionsFailed", "ExecutionsSucceeded", "StageSeconds", "SecondsPerFrame", "FramesRendered",
                   "ModelLoadSeconds", "ColdStart", "frames / seconds", "render_chunk", "SadTalker"):
        assert needle in body, needle
    # metric names on the dashboard are the ones functions/observability.py emits
    from pathlib import Path

    emitted = Path(__file__).resolve().parents[2].joinpath("functions", "observability.py").read_text()
    for name in ("StageSeconds", "SecondsPerFrame", "FramesRendered", "ModelLoadSeconds"):
        assert f'name="{name}"' in emitted, name


def test_outputs_tell_how_to_start_a_job(template):
    outputs = template["Outputs"]
    for key in ("BucketName", "StateMachineArn", "StartJobS3Drop", "StartJobConsoleInput", "StartJobCli"):
        assert key in outputs, key
    assert "inbox/" in json.dumps(outputs["StartJobS3Drop"]["Value"])
    assert "sadtalker submit" in json.dumps(outputs["StartJobCli"]["Value"])
    console = json.dumps(outputs["StartJobConsoleInput"]["Value"])
    assert "image" in console and "audio" in console and "params" in console

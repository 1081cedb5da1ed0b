"""The deployed state machine IS statemachine/sadtalker.asl.json, with substitutions and least-privilege IAM."""

from __future__ import annotations

import json
import re

from cdk_template import REPO, function_by_handler, object_patterns, resources, role_statements
from functions.contract import HANDLERS
from infra.components.workflow import ECS_RULE, FUNCTION_PLACEHOLDERS
from infra.config import RENDER_CONCURRENCY, DeployConfig
from sadtalker.jobs import JobKeys
from sadtalker.local.deployed import task_entrypoint

ASL = REPO / "statemachine" / "sadtalker.asl.json"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _state_machine(template):
    ((lid, sm),) = resources(template, "AWS::StepFunctions::StateMachine").items()
    return lid, sm["Properties"]


def test_definition_string_is_the_asl_file_verbatim(template):
    _, props = _state_machine(template)
    assert props["DefinitionString"] == ASL.read_text()


def test_every_placeholder_has_a_substitution_and_no_substitution_is_stray(template):
    _, props = _state_machine(template)
    used = set(PLACEHOLDER.findall(ASL.read_text()))
    assert used, "the ASL has no placeholders?"
    assert set(props["DefinitionSubstitutions"]) == used


def test_function_placeholders_point_at_the_right_functions(template):
    _, props = _state_machine(template)
    subs = props["DefinitionSubstitutions"]
    by_handler = function_by_handler(template)
    for placeholder, name in FUNCTION_PLACEHOLDERS.items():
        if placeholder in subs:
            assert subs[placeholder] == {"Fn::GetAtt": [by_handler[HANDLERS[name]], "Arn"]}, placeholder


def test_enhance_placeholders_point_at_the_task_network_and_container(template):
    _, props = _state_machine(template)
    subs = props["DefinitionSubstitutions"]
    (cluster,) = resources(template, "AWS::ECS::Cluster")
    ((taskdef_id, taskdef),) = resources(template, "AWS::ECS::TaskDefinition").items()
    assert subs["ClusterArn"] == {"Fn::GetAtt": [cluster, "Arn"]}
    assert subs["EnhanceTaskDefinitionArn"] == {"Ref": taskdef_id}
    container = taskdef["Properties"]["ContainerDefinitions"][0]
    assert subs["EnhanceContainerName"] == container["Name"]
    assert container["Command"] == ["python", "-m", task_entrypoint().split(":")[0]]
    subnets = set(resources(template, "AWS::EC2::Subnet"))
    assert {subs["SubnetId1"]["Ref"], subs["SubnetId2"]["Ref"]} == subnets
    sg = subs["EnhanceSecurityGroupId"]["Fn::GetAtt"][0]
    assert "finalize task" in template["Resources"][sg]["Properties"]["GroupDescription"]


def test_map_concurrency_is_a_stack_parameter_fed_through_a_substitution(template):
    _, props = _state_machine(template)
    assert props["DefinitionSubstitutions"]["RenderMaxConcurrency"] == {"Ref": "RenderConcurrency"}
    param = template["Parameters"]["RenderConcurrency"]
    assert param["Type"] == "Number" and param["MaxValue"] == 10000 and param["MinValue"] == 1
    assert param["Default"] == DeployConfig().render_concurrency == RENDER_CONCURRENCY


def test_substituted_definition_is_valid_json_with_the_values_in_place(template):
    _, props = _state_machine(template)
    text = props["DefinitionString"]
    fake = {k: f"FAKE-{k}" for k in props["DefinitionSubstitutions"]}
    fake["RenderMaxConcurrency"] = "7"
    definition = json.loads(PLACEHOLDER.sub(lambda m: fake[m.group(1)], text))
    raw = json.dumps(definition)
    assert not PLACEHOLDER.search(raw)
    assert "States.StringToJson('7')" in raw


def test_logging_all_and_tracing_on(template):
    _, props = _state_machine(template)
    log = props["LoggingConfiguration"]
    assert log["Level"] == "ALL" and log["IncludeExecutionData"] is True
    group = log["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_state_machine_role_is_least_privilege(template):
    _, props = _state_machine(template)
    role = props["RoleArn"]["Fn::GetAtt"][0]
    sts = role_statements(template, role)
    by_action: dict[str, list] = {}
    for st in sts:
        for a in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            by_action.setdefault(a, []).append(st)

    # lambda:InvokeFunction on exactly the Task states' functions (not the starter)
    by_handler = function_by_handler(template)
    (invoke,) = by_action["lambda:InvokeFunction"]
    expected = {f"<{by_handler[HANDLERS[n]]}>" for p, n in FUNCTION_PLACEHOLDERS.items()
                if p in props["DefinitionSubstitutions"]}
    assert set(object_patterns(invoke["Resource"])) == expected
    assert f"<{by_handler[HANDLERS['starter']]}>" not in expected

    ((taskdef_id, _),) = resources(template, "AWS::ECS::TaskDefinition").items()
    (cluster,) = resources(template, "AWS::ECS::Cluster")
    (run,) = by_action["ecs:RunTask"]
    assert run["Resource"] == {"Ref": taskdef_id}
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    for action in ("ecs:StopTask", "ecs:DescribeTasks"):
        (st,) = by_action[action]
        assert object_patterns(st["Resource"])[0].endswith(f":task/<{cluster}>/*")
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        (st,) = by_action[action]
        assert object_patterns(st["Resource"])[0].endswith(f":rule/{ECS_RULE}")
    (pass_role,) = by_action["iam:PassRole"]
    taskdef = resources(template, "AWS::ECS::TaskDefinition")[taskdef_id]["Properties"]
    assert sorted(object_patterns(pass_role["Resource"])) == sorted(
        object_patterns([taskdef["TaskRoleArn"], taskdef["ExecutionRoleArn"]]))
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # Only log delivery and X-Ray (no resource-level permissions exist for them) use Resource "*".
    for st in sts:
        if st["Resource"] == "*":
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert all(a.startswith(("logs:", "xray:")) for a in actions), actions
    # the Distributed Maps: child executions of itself only, S3 only on the item arrays and map results
    (start,) = by_action["states:StartExecution"]
    name = props["StateMachineName"]
    assert name.endswith("-sadtalker") and object_patterns(start["Resource"])[0].endswith(f":stateMachine:{name}")
    for action in ("states:DescribeExecution", "states:StopExecution"):
        (st,) = by_action[action]
        assert object_patterns(st["Resource"])[0].endswith(f":execution:{name}/*")
    k = JobKeys.any()
    s3_keys = {p for a, sts_ in by_action.items() if a.startswith("s3:") and a != "s3:ListBucket"
               for st in sts_ for p in object_patterns(st["Resource"])}
    assert {p.split(">/", 1)[1] for p in s3_keys} == {k.chunk_items, k.range_items, k.map_results + "*"}
    (put,) = by_action["s3:PutObject"]
    assert [p.split(">/", 1)[1] for p in object_patterns(put["Resource"])] == [k.map_results + "*"]


def test_asl_run_task_network_matches_the_isolated_vpc(template):
    """The ASL runs the task without a public IP: the VPC must reach ECR/Logs/S3 through endpoints, no IGW."""
    definition = json.loads(ASL.read_text())

    def states(block):
        for name, st in block["States"].items():
            yield name, st
            for branch in st.get("Branches", []):
                yield from states(branch)
            if "ItemProcessor" in st:
                yield from states(st["ItemProcessor"])

    run_tasks = [st for _, st in states(definition) if st.get("Resource", "").startswith("arn:aws:states:::ecs:runTask")]
    assert run_tasks, "the ASL has no ecs:runTask state"
    for st in run_tasks:
        assert st["Resource"].endswith(".sync")
        net = st["Parameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert net["AssignPublicIp"] == "DISABLED"
        assert st["Parameters"]["LaunchType"] == "FARGATE"
    assert not resources(template, "AWS::EC2::InternetGateway")
    services = json.dumps([e["Properties"]["ServiceName"] for e in resources(template, "AWS::EC2::VPCEndpoint").values()])
    for needed in ("ecr.api", "ecr.dkr", ".logs", ".s3"):
        assert needed in services, needed


def test_plan_chunks_gets_the_map_concurrency_from_the_same_placeholder(template):
    """PlanChunks sizes chunks for the Map's concurrency: both read the one RenderMaxConcurrency value."""
    sm = next(iter(resources(template, "AWS::StepFunctions::StateMachine").values()))["Properties"]
    asl = json.loads(sm["DefinitionString"])
    states = asl["States"]
    assert states["RenderChunks"]["MaxConcurrencyPath"] == "$.limits.max_concurrency"
    assert states["PlanChunks"]["Parameters"]["Payload"]["max_concurrency.$"] == "$.limits.max_concurrency"
    assert "${RenderMaxConcurrency}" in json.dumps(states["ValidateJob"]["ResultSelector"])
    assert sm["DefinitionSubstitutions"]["RenderMaxConcurrency"] == {"Ref": "RenderConcurrency"}
    lid = function_by_handler(template)["functions.plan_chunks.handler"]
    assert "SADTALKER_MAP_CONCURRENCY" not in template["Resources"][lid]["Properties"]["Environment"]["Variables"]

"""The ASL file: valid (statelint), placeholders only in strings and all documented, Retry/Catch policy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sadtalker.errors import ERROR_NAMES
from sadtalker.local.runtime import LAMBDAS, PLACEHOLDERS, asl_path, substitute

TRANSIENT_LAMBDA = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException"}
INPUT_ERRORS = set(ERROR_NAMES) - {"TransientError"}


# statelint 3.1.0 predates ReaderConfig.InputType, which an ItemReader of a JSON object needs (without it
# the object is not parsed into items): exactly this complaint is tolerated.
STATELINT_GAP = re.compile(r'^ Field "InputType" not allowed in State Machine\.States\.\w+\.ItemReader\.ReaderConfig$')


def statelint(path: Path) -> tuple[int, list[str]]:
    exe = Path(sys.executable).with_name("statelint")
    run = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in run.stdout.splitlines() if ln.strip() and not re.match(r"^\d+ errors?:$", ln)]
    return run.returncode, [ln for ln in lines if not STATELINT_GAP.match(ln)] + run.stderr.splitlines()


def all_states(states: dict, prefix: str = "") -> dict[str, dict]:
    out = {}
    for name, s in states.items():
        out[prefix + name] = s
        for b in s.get("Branches", []):
            out.update(all_states(b["States"], prefix + name + "/"))
        if "ItemProcessor" in s:
            out.update(all_states(s["ItemProcessor"]["States"], prefix + name + "/"))
    return out


@pytest.fixture(scope="module")
def asl() -> dict:
    return json.loads(asl_path().read_text())


def test_statelint_accepts_the_file_and_rejects_a_broken_one(tmp_path, asl):
    _, problems = statelint(asl_path())
    assert problems == []
    broken = json.loads(json.dumps(asl))
    broken["States"]["PlanChunks"]["Next"] = "NoSuchState"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    code, problems = statelint(tmp_path / "broken.json")
    assert code != 0 and any("NoSuchState" in p for p in problems)


def test_placeholders_only_inside_strings_and_documented(asl):
    found = set()

    def walk(v, where):
        if isinstance(v, dict):
            for k, x in v.items():
                assert "${" not in k, f"placeholder in a key at {where}"
                walk(x, f"{where}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, str):
            found.update(re.findall(r"\$\{(\w+)\}", v))
    walk(asl, "$")
    assert found == set(PLACEHOLDERS)
    doc = sys.modules["sadtalker.local.runtime"].__doc__
    from functions.contract import TASK_STATE_FUNCTIONS

    # function ARNs are declared by the functions' contracts, every other placeholder in the runtime's doc
    assert all(p in doc or p in TASK_STATE_FUNCTIONS for p in PLACEHOLDERS)
    # substituted, the definition is still JSON; a missing value is an error
    values = {p: "1" for p in PLACEHOLDERS}
    json.loads(substitute(asl_path().read_text(), values))
    with pytest.raises(KeyError, match="RenderMaxConcurrency"):
        substitute(asl_path().read_text(), {k: v for k, v in values.items() if k != "RenderMaxConcurrency"})


def test_flow_shape(asl):
    s = asl["States"]
    assert asl["StartAt"] == "ReceiveJob" and s["ReceiveJob"]["Type"] == "Pass"  # any JSON input gets a Catch
    assert s["ReceiveJob"]["Next"] == "ValidateJob"
    assert s["ValidateJob"]["Next"] == "PreprocessAndAudioFeatures"
    assert [b["StartAt"] for b in s["PreprocessAndAudioFeatures"]["Branches"]] == ["Preprocess", "AudioFeatures"]
    assert s["Audio2Coeff"]["Next"] == "PlanChunks" and s["PlanChunks"]["Next"] == "RenderChunks"
    m = s["RenderChunks"]
    assert m["Type"] == "Map" and m["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert m["MaxConcurrencyPath"] == "$.limits.max_concurrency" and m["ToleratedFailureCount"] == 0
    assert m["ItemReader"]["Parameters"] == {"Bucket.$": "$.job.bucket", "Key.$": "$.plan.chunk_items"}
    assert s[m["Next"]]["Type"] == "Choice"
    e = s["EnhanceRanges"]
    assert s["ChooseFinalize"]["Choices"][0]["Next"] == "EnhanceRanges" and s["ChooseFinalize"]["Default"] == "Finalize"
    assert e["ItemReader"]["Parameters"]["Key.$"] == "$.plan.range_items" and e["Next"] == "Finalize"
    task = e["ItemProcessor"]["States"]["EnhanceRange"]
    assert task["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    (override,) = task["Parameters"]["Overrides"]["ContainerOverrides"]
    assert [v["Name"] for v in override["Environment"]] == ["JOB_ID", "RANGE_START", "RANGE_END"]  # nothing else
    assert s["Finalize"]["Resource"].endswith("lambda:invoke") and "${FinalizeFunctionArn}" in json.dumps(s["Finalize"])
    assert s["Finalize"]["Next"] == "CheckResult" and "FinalizeLambda" not in s
    assert s["CheckResult"]["Next"] == "Succeeded" and s["Succeeded"]["Type"] == "Succeed"
    # no state data grows with the clip: the Maps' results go to S3 and collapse to a key
    for name in ("RenderChunks", "EnhanceRanges"):
        assert "ResultWriter" in s[name] and set(s[name]["ResultSelector"]) == {"map_run.$", "results.$"}, name
    assert s["RecordFailure"]["Next"] == "JobFailed"
    assert s["JobFailed"]["ErrorPath"] == "$.failure.error"


def test_every_top_level_task_is_caught_and_retries_only_transient_errors(asl):
    for name, state in all_states(asl["States"]).items():
        if state["Type"] not in ("Task", "Map", "Parallel"):
            continue
        top = "/" not in name
        if top and name != "RecordFailure":
            assert state["Catch"][0]["Next"] == "RecordFailure", name
            assert state["Catch"][0]["ResultPath"] == "$.error", name
        for r in state.get("Retry", []):
            assert not set(r["ErrorEquals"]) & INPUT_ERRORS, f"{name} retries an input error"
            assert "States.ALL" not in r["ErrorEquals"], name
            # only the Fargate task retries States.TaskFailed: it records named errors and exits 0, so a
            # failed task is a crash, a kill or a start failure
            assert "States.TaskFailed" not in r["ErrorEquals"] or name == "EnhanceRanges/EnhanceRange", name
            assert r.get("JitterStrategy") == "FULL" and r["BackoffRate"] > 1, name
        if state["Type"] == "Task" and state["Resource"].endswith("lambda:invoke"):
            errors = set().union(*(r["ErrorEquals"] for r in state["Retry"]))
            assert TRANSIENT_LAMBDA | {"TransientError"} <= errors, name
            throttle = next(r for r in state["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"])
            waits = [min(throttle["IntervalSeconds"] * throttle["BackoffRate"] ** i, throttle["MaxDelaySeconds"])
                     for i in range(throttle["MaxAttempts"])]
            assert sum(waits) >= 20 * 60, f"{name}: throttling must be waited out for minutes, not seconds"
            assert state["TimeoutSeconds"] > 900, f"{name}: the state must outlast its function's timeout"
    fin = asl["States"]["EnhanceRanges"]["ItemProcessor"]["States"]["EnhanceRange"]["Retry"]
    assert all(e.startswith("ECS.") for e in fin[0]["ErrorEquals"]) and fin[1]["ErrorEquals"] == ["States.TaskFailed"]


def test_lambda_placeholders_match_handler_modules(asl):
    import importlib

    for placeholder, (_name, module) in LAMBDAS.items():
        assert f"${{{placeholder}}}" in asl_path().read_text()
        assert callable(importlib.import_module(module).handler)


def test_result_writer_prefix_is_the_job_keys_map_results(asl):
    """The ASL spells the prefix with States.Format; JobKeys.map_results is where RecordFailure and the
    state machine role's policy look: the two must agree."""
    from sadtalker.jobs import JobKeys

    for name in ("RenderChunks", "EnhanceRanges"):
        fmt = asl["States"][name]["ResultWriter"]["Parameters"]["Prefix.$"]
        m = re.fullmatch(r"States\.Format\('([^']*)', \$\.job\.job_id\)", fmt)
        assert m and m.group(1).replace("{}", "job-1") == JobKeys("job-1").map_results, fmt


def test_timeouts_name_the_limits_admission_reads():
    from statemachine import timeouts

    t = timeouts()
    assert t["EnhanceRanges"] == t["EnhanceRange"] > t["Finalize"] >= 960 and t["RenderChunks"] == t["RenderChunk"]

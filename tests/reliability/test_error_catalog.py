"""README's "What can go wrong" table = sadtalker.errors.ERROR_NAMES; every name is raised in the code;
the ASL's Fail states only ever report names from that list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sadtalker import errors
from sadtalker.errors import ERROR_NAMES

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = (ROOT / "layers" / "sadtalker", ROOT / "functions")


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## What can go wrong\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md has no '## What can go wrong' section"
    return m.group(1)


def readme_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in readme_section().splitlines():
        m = re.match(r"^\|\s*`(\w+)`\s*\|(.+?)\|(.+?)\|\s*$", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    return rows


def code_files() -> list[Path]:
    return [p for d in CODE_DIRS for p in d.rglob("*.py") if p.name != "errors.py"]


def test_readme_lists_exactly_the_error_names_in_order():
    assert list(readme_rows()) == list(ERROR_NAMES)


def test_every_row_says_cause_and_remedy():
    for name, (cause, remedy) in readme_rows().items():
        assert len(cause.split()) >= 5 and len(remedy.split()) >= 3, name


def test_error_names_are_exactly_the_named_error_classes():
    classes = {n for n, c in vars(errors).items()
               if isinstance(c, type) and issubclass(c, errors.SadTalkerError) and c is not errors.SadTalkerError}
    assert classes == set(ERROR_NAMES)


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_error_name_is_raised_somewhere(name):
    pattern = re.compile(rf"\braise\s+(?:errors\.)?{name}\(")
    hits = [str(p.relative_to(ROOT)) for p in code_files() if pattern.search(p.read_text())]
    assert hits, f"{name} is listed but never raised in layers/ or functions/"


def test_asl_fail_states_report_only_our_names():
    from functions.record_failure import FALLBACK, classify

    asl = json.loads((ROOT / "statemachine" / "sadtalker.asl.json").read_text())
    fails = {k: v for k, v in asl["States"].items() if v["Type"] == "Fail"}
    assert fails
    for name, state in fails.items():
        if "Error" in state:
            assert state["Error"] in ERROR_NAMES, name
        else:  # the name comes from RecordFailure's output
            assert state.get("ErrorPath") == "$.failure.error", name
            assert asl["States"]["RecordFailure"]["ResultSelector"]["error.$"] == "$.Payload.error"
    assert set(FALLBACK.values()) <= set(ERROR_NAMES)
    # whatever a state throws (ours, Lambda's, Step Functions', Python's), the recorded name is ours
    foreign = ["States.TaskFailed", "States.Timeout", "States.Runtime", "Lambda.TooManyRequestsException",
               "Lambda.ServiceException", "KeyError", "MemoryError", "ECS.AmazonECSException", *ERROR_NAMES]
    states = ["ValidateJob", "PreprocessAndAudioFeatures", "Audio2Coeff", "PlanChunks", "RenderChunks",
              "Finalize", "CheckResult"]
    for err in foreign:
        for st in states:
            rec = classify(err, json.dumps({"errorType": err, "errorMessage": "x"}), st)
            assert rec.error in ERROR_NAMES, (err, st, rec)
            assert rec.message

"""Every named error an enhancement task can raise reaches error.json with its name and message.

The task records the error in ``JobKeys.range_error`` and exits 0; Finalize raises it by name, so the
state is Finalize. (A non-zero exit would make runTask.sync fail the state as States.TaskFailed and the
name would be lost.) The rendering is stubbed: only the range task and Finalize are under test here.
"""

from __future__ import annotations

import json

import pytest

from sadtalker import errors
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job

# What a range can raise: missing/invalid intermediates, the plan, the enhancer's weights, storage.
FARGATE_ERRORS = ["InvalidInput", "InvalidParams", "InvalidChunk", "WeightsMissing", "CheckpointError",
                  "FinalizeFailed", "AccessDenied"]


@pytest.fixture(scope="module")
def outcomes(reduced_weights, media, template):
    from sadtalker.stages import enhance_range as stage

    def fake_enhance(storage, job, start, end, models):
        name = job.job_id.removeprefix("fe-")
        if name == "crash":
            raise RuntimeError("simulated crash in the task")
        raise getattr(errors, name)(f"simulated {name} in the Fargate task")

    def stub_render(event, ctx):
        return {"key": f"work/{event['job_id']}/chunks/x.npz", "frames": event["end"] - event["start"],
                "handler_seconds": 0.0}

    real = stage.enhance_range
    stage.enhance_range = fake_enhance
    try:
        with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-fargate-errors", template=template) as rt:
            rt.handlers["sadtalker-render-chunk"] = stub_render
            arns = {n: rt.start(f"fe-{n}", media["portrait"], media["short"], {"enhancer": "gfpgan"})
                    for n in [*FARGATE_ERRORS, "crash"]}
            out = {n: (rt.wait(arn, timeout=600), json.loads(rt.get(f"outputs/fe-{n}/error.json")))
                   for n, arn in arns.items()}
    finally:
        stage.enhance_range = real
    return out


@pytest.mark.parametrize("name", FARGATE_ERRORS)
def test_a_named_error_of_the_task_reaches_error_json(outcomes, name):
    desc, record = outcomes[name]
    assert desc["status"] == "FAILED" and desc["error"] == name
    assert record == {"error": name, "message": f"enhancement range 0-15: simulated {name} in the Fargate task",
                      "state": "Finalize", "job_id": f"fe-{name}"}


def test_a_crash_in_the_task_is_finalize_failed_with_its_reason(outcomes):
    desc, record = outcomes["crash"]
    assert record["error"] == "FinalizeFailed" and record["state"] == "Finalize"
    assert record["message"] == "enhancement crashed: RuntimeError: simulated crash in the task"

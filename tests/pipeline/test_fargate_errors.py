"""Every named error the Fargate finalize task can raise reaches error.json with its name and message.

The task records the error in the bucket and exits 0; CheckResult raises it; RecordFailure names the
Finalize state. (A non-zero exit would make runTask.sync fail the state as States.TaskFailed and the
name would be lost.) The rendering is stubbed: only Finalize is under test here.
"""

from __future__ import annotations

import json

import pytest

from sadtalker import errors
from sadtalker.local import LocalRuntime

pytestmark = pytest.mark.job

# What finalize can raise: missing/invalid intermediates, the plan, the enhancer's weights, storage.
FARGATE_ERRORS = ["InvalidInput", "InvalidParams", "InvalidChunk", "WeightsMissing", "CheckpointError",
                  "FinalizeFailed", "AccessDenied", "TransientError"]


@pytest.fixture(scope="module")
def outcomes(reduced_weights, media, template):
    from sadtalker.stages import finalize as stage

    def fake_finalize(storage, job, models):
        name = job.job_id.removeprefix("fe-")
        if name == "crash":
            raise RuntimeError("simulated crash in the task")
        raise getattr(errors, name)(f"simulated {name} in the Fargate task")

    def stub_render(event, ctx):
        return {"key": f"work/{event['job_id']}/chunks/x.npz", "frames": event["end"] - event["start"],
                "handler_seconds": 0.0}

    real = stage.finalize
    stage.finalize = fake_finalize
    try:
        with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-fargate-errors", template=template,
                          lambda_finalize_max_frames=0) as rt:
            rt.handlers["sadtalker-render-chunk"] = stub_render
            arns = {n: rt.start(f"fe-{n}", media["portrait"], media["short"], {}) for n in [*FARGATE_ERRORS, "crash"]}
            out = {}
            for n, arn in arns.items():
                desc = rt.wait(arn, timeout=600)
                failed_tasks = [e for e in rt.history(arn) if e["type"] == "TaskFailed"
                                and e["taskFailedEventDetails"].get("resourceType") == "ecs"]
                out[n] = (desc, json.loads(rt.get(f"outputs/fe-{n}/error.json")), failed_tasks)
    finally:
        stage.finalize = real
    return out


@pytest.mark.parametrize("name", FARGATE_ERRORS)
def test_a_named_error_of_the_task_reaches_error_json(outcomes, name):
    desc, record, failed_tasks = outcomes[name]
    assert desc["status"] == "FAILED" and desc["error"] == name
    assert record == {"error": name, "message": f"simulated {name} in the Fargate task", "state": "Finalize",
                      "job_id": f"fe-{name}"}
    assert failed_tasks == [], "a recorded error is not a failed task: the Fargate task is not retried"


def test_a_crash_in_the_task_is_finalize_failed_with_its_reason(outcomes):
    desc, record, _ = outcomes["crash"]
    assert record["error"] == "FinalizeFailed" and record["state"] == "Finalize"
    assert record["message"] == "finalize crashed: RuntimeError: simulated crash in the task"

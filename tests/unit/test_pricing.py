"""The one price table and the quote: bill arithmetic, the plan it quotes, the cap, the actual cost."""

from __future__ import annotations

import io
import math
import sys
import wave

import pytest

from functions.contract import CONTRACTS
from functions.quote import FARGATE_EPHEMERAL_GB, FARGATE_GB_PER_VCPU, deployed_stack
from sadtalker import pricing
from sadtalker.errors import CostLimitExceeded
from sadtalker.jobs import JobKeys
from sadtalker.media_probe import probe_audio
from sadtalker.params import JobParams
from sadtalker.pricing import PRICES, Stack, Usage, actual_cost, bill, check_cost_cap, quote, quote_before_decoding
from sadtalker.stages.plan_chunks import make_plan

STACK = Stack(lambda_mb={"render_chunk": 10240, "validate_job": 1024, "finalize": 2048}, render_concurrency=10,
              fargate_vcpu=4, fargate_gb=16, fargate_ephemeral_gb=30)


def test_bill_is_the_price_table_times_the_quantities():
    use = Usage(lambda_s={"render_chunk": 100.0, "validate_job": 2.0}, invocations=5, fargate_task_s=1800,
                transitions=40, s3_puts=10, s3_gets=100)
    usd = bill(use, STACK)
    assert usd["lambda"] == pytest.approx((10 * 100 + 1 * 2) * PRICES.lambda_gb_s + 5 * PRICES.lambda_request)
    assert usd["fargate"] == pytest.approx(0.5 * (4 * PRICES.fargate_vcpu_h + 16 * PRICES.fargate_gb_h
                                                  + 10 * PRICES.fargate_ephemeral_gb_h))
    assert usd["step_functions"] == pytest.approx(40 * PRICES.sfn_transition)
    assert usd["s3_requests"] == pytest.approx(10 * PRICES.s3_put + 100 * PRICES.s3_get)
    assert usd["total"] == pytest.approx(sum(v for k, v in usd.items() if k != "total"))


@pytest.mark.parametrize("frames,params,conc", [(200, {}, 10), (7500, {}, 10), (75, {"size": 512}, 0),
                                                (625, {"enhancer": "gfpgan", "preprocess": "full"}, 25)])
def test_the_quote_uses_plan_chunks_own_plan(frames, params, conc):
    p = JobParams.load(params)
    stack = deployed_stack(conc)
    q, plan = quote(frames, p, stack), make_plan(frames, p, conc)
    assert (q.frames, q.chunks, q.chunk_frames) == (frames, len(plan.chunks), plan.chunk_frames)
    assert q.waves == math.ceil(len(plan.chunks) / (conc or len(plan.chunks)))
    assert q.ranges == (len(plan.ranges) if hasattr(plan, "ranges") else int(bool(p.enhancer)))
    assert 0 < q.usd["total"] < q.usd_cold["total"] == q.total_usd and q.wall_s < q.wall_cold_s


def test_longer_clips_and_enhancers_cost_more():
    stack = deployed_stack(10)
    short, long_ = quote(200, JobParams(), stack), quote(2000, JobParams(), stack)
    enhanced = quote(200, JobParams(enhancer="gfpgan"), stack)
    assert short.total_usd < long_.total_usd and short.wall_s < long_.wall_s
    assert enhanced.usd["fargate"] > 0 == short.usd["fargate"] and enhanced.total_usd > short.total_usd


def test_the_cap_refuses_by_name_and_says_the_quote():
    q = quote(200, JobParams(), deployed_stack(10))
    check_cost_cap(q, JobParams())  # no cap
    check_cost_cap(q, JobParams(max_cost_usd=q.total_usd * 1.01))
    with pytest.raises(CostLimitExceeded, match=rf"\${q.total_usd:.3f} .*max_cost_usd of \$0.010"):
        check_cost_cap(q, JobParams(max_cost_usd=0.01))


def _wav(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


def test_validate_job_quotes_from_the_wav_header_and_only_from_a_stated_length():
    data = _wav(2.0)
    facts = probe_audio(data[:64], len(data), "inbox/j/a.wav")
    assert facts["seconds"] == 2.0
    q = quote_before_decoding(JobParams(), facts, deployed_stack(10))
    assert q is not None and q.frames == 50
    assert quote_before_decoding(JobParams(max_cost_usd=0.001), {"container": "mp3"}, deployed_stack(10)) is None
    with pytest.raises(CostLimitExceeded):
        quote_before_decoding(JobParams(max_cost_usd=0.001), facts, deployed_stack(10))
    # a header may state more than the job accepts: AudioFeatures refuses that; quote what could be made
    long_q = quote_before_decoding(JobParams(max_audio_seconds=1.0), {"seconds": 500.0}, deployed_stack(10))
    assert long_q.frames == 25


def test_actual_cost_bills_the_measured_handler_seconds():
    plan = make_plan(200, JobParams(enhancer="gfpgan"), 10)
    timings = {"validate_job": 0.5, "render_chunks": 120.0, "render_chunk_count": 6, "render_seconds_per_frame": 2.1,
               "enhance_ranges": 400.0, "enhance_range_count": 2, "finalize": {"setup_s": 1.0, "total_s": 3.0}}
    got = actual_cost(timings, plan, STACK)
    use = Usage(lambda_s={"validate_job": 0.5, "render_chunk": 120.0, "finalize": 3.0}, invocations=8,
                fargate_task_s=400.0,
                transitions=pricing.MAIN_TRANSITIONS + pricing.TRANSITIONS_PER_ITEM * (len(plan.chunks) + len(plan.ranges)))
    assert got["usd"]["total"] == pytest.approx(bill(use, STACK)["total"], abs=1e-5)
    assert got["billed_s"] == {"validate_job": 0.5, "render_chunk": 120.0, "finalize": 3.0}
    record = pricing.cost_record(timings, plan, JobParams(enhancer="gfpgan"), deployed_stack(0))
    assert record["quote_cold_usd"] == round(pricing.quote_plan(plan, JobParams(enhancer="gfpgan"),
                                                                 deployed_stack(10)).total_usd, 5)
    assert record["actual"]["usd"]["total"] > 0


def test_the_deployed_stack_is_the_contracts_and_the_fargate_task_size():
    from infra.config import FinalizeTaskSize

    stack = deployed_stack(10)
    for c in CONTRACTS.values():
        if c.handler is not None:
            assert stack.lambda_mb[c.stage] == c.memory_mb
    size = FinalizeTaskSize()
    assert stack.fargate_vcpu * 1024 == size.cpu
    assert FARGATE_GB_PER_VCPU * size.cpu // 1024 * 1024 == size.memory_mib
    assert FARGATE_EPHEMERAL_GB == size.ephemeral_gib
    assert Stack.from_dict(stack.to_dict()) == stack


def test_the_projection_uses_this_price_table():
    import importlib.util
    from pathlib import Path

    path = Path(pricing.__file__).parents[2] / "benchmarks" / "projection.py"
    spec = importlib.util.spec_from_file_location("projection_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    assert mod.Prices is pricing.Prices and mod.bill is pricing.bill


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    from pathlib import Path

    from functions import common
    from sadtalker.storage import LocalStorage

    store = LocalStorage(tmp_path)
    monkeypatch.setattr(common, "_storage_factory", lambda name: store)
    monkeypatch.setenv("SADTALKER_BUCKET", "b")
    examples = Path(__file__).parents[2] / "examples"
    store.put("inbox/q/face.png", (examples / "portrait.png").read_bytes())
    store.put("inbox/q/speech.wav", (examples / "speech.wav").read_bytes())
    return store


def test_validate_job_puts_the_quote_into_the_state_and_refuses_over_the_cap(bucket):
    from functions.validate_job import handler

    event = {"job_id": "q", "input": {"image": "inbox/q/face.png", "audio": "inbox/q/speech.wav"},
             "max_concurrency": 150}
    out = handler(event, None)
    assert out["quote"]["frames"] == 75 and out["quote"]["stack"]["render_concurrency"] == 150
    assert out["quote"]["total_usd"] == quote(75, JobParams(), deployed_stack(150)).to_dict()["total_usd"]
    bucket.delete(JobKeys("q").record)
    event["input"]["params"] = {"max_cost_usd": 0.001}
    with pytest.raises(CostLimitExceeded, match="max_cost_usd of \\$0.001"):
        handler(event, None)
    assert not bucket.exists(JobKeys("q").record)  # refused before the job record


def test_plan_chunks_quotes_the_decoded_frames_and_refuses_over_the_cap(bucket):
    from functions.plan_chunks import handler

    event = {"job_id": "q", "bucket": "b", "params": {}, "num_frames": 200, "max_concurrency": 150}
    out = handler(event, None)
    assert (out["quote"]["frames"], out["quote"]["chunks"]) == (200, out["num_chunks"])
    for key in bucket.list(JobKeys("q").work):
        bucket.delete(key)
    event["params"] = {"max_cost_usd": 0.01}
    with pytest.raises(CostLimitExceeded):
        handler(event, None)
    assert [k for k in bucket.list(JobKeys("q").work) if "timings" not in k] == []  # no plan, no item arrays


def test_result_json_records_the_actual_cost_next_to_the_quote(tmp_path):
    import json

    from test_segments import _finalize_job

    from sadtalker.stages.finalize import finalize
    from sadtalker.stages.plan_chunks import ChunkPlan
    from sadtalker.weights import ModelStore

    storage, job = _finalize_job(tmp_path, {})
    for s, seconds in ((0, 20.0), (10, 21.0), (20, 22.0)):  # the render chunks' timing records
        name = JobKeys.chunk_name(s, s + 10)
        storage.put(job.timing(name), json.dumps({"stage": name, "seconds": seconds, "frames": 10}).encode())
    finalize(storage, job, ModelStore(tmp_path / "weights"), deployed_stack(0))
    cost = json.loads(storage.get(job.result))["cost"]
    plan = ChunkPlan.read(storage, job)
    assert cost["quote_cold_usd"] == round(pricing.quote_plan(plan, JobParams(), deployed_stack(3)).total_usd, 5)
    assert cost["actual"]["billed_s"]["render_chunk"] == 63.0
    assert cost["actual"]["usd"]["total"] > 63.0 * 10 * PRICES.lambda_gb_s  # render + finalize + transitions

from __future__ import annotations

import pytest

from sadtalker.errors import InvalidChunk
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.plan_chunks import MAX_CHUNKS, ChunkPlan, check_plan, make_plan, plan_chunks
from sadtalker.storage import LocalStorage


@pytest.mark.parametrize("num_frames,chunk,expected", [
    (75, 25, [(0, 25), (25, 50), (50, 75)]),
    (76, 25, [(0, 25), (25, 50), (50, 75), (75, 76)]),
    (1, 25, [(0, 1)]),
    (10, 4, [(0, 4), (4, 8), (8, 10)]),
])
def test_chunks_tile_the_clip(num_frames, chunk, expected):
    chunks = plan_chunks(num_frames, JobParams(chunk_frames=chunk), concurrency=10)
    assert [(c["start"], c["end"]) for c in chunks] == expected
    check_plan(chunks, num_frames)


def test_long_clips_get_longer_chunks_not_more_history():
    chunks = plan_chunks(100_000, JobParams(chunk_frames=1), concurrency=10)
    assert len(chunks) <= MAX_CHUNKS
    check_plan(chunks, 100_000)


@pytest.mark.parametrize("bad", [0, -3, True, 2.5])
def test_no_frames_is_a_named_error(bad):
    with pytest.raises(InvalidChunk):
        plan_chunks(bad, JobParams(), concurrency=10)


def test_check_plan_rejects_gaps_overlaps_and_short_cover():
    with pytest.raises(InvalidChunk, match="does not continue"):
        check_plan([{"start": 0, "end": 5}, {"start": 6, "end": 10}], 10)
    with pytest.raises(InvalidChunk, match="does not continue"):
        check_plan([{"start": 0, "end": 5}, {"start": 4, "end": 10}], 10)
    with pytest.raises(InvalidChunk, match="cover 5 frames"):
        check_plan([{"start": 0, "end": 5}], 10)


def test_the_plan_depends_on_the_concurrency_and_round_trips(tmp_path):
    params = JobParams()
    narrow, wide = make_plan(250, params, concurrency=10), make_plan(250, params, concurrency=20)
    assert narrow.chunks != wide.chunks and len(wide.chunks) > len(narrow.chunks)
    assert make_plan(250, params, concurrency=0).chunks == make_plan(250, params, concurrency=40).chunks
    storage, job = LocalStorage(tmp_path), JobKeys("plan-rt")
    storage.put(job.plan, wide.to_json())
    assert ChunkPlan.read(storage, job) == wide
    storage.put(job.plan, b'{"num_frames": 10}')
    with pytest.raises(InvalidChunk, match="not a plan"):
        ChunkPlan.read(storage, job)


def test_chunks_are_sized_for_the_slowest_host_in_fp32_and_user_chunks_are_capped():
    from sadtalker.errors import InvalidParams
    from sadtalker.stages.plan_chunks import (
        CHUNK_TIME_BUDGET_S,
        check_chunk_budget,
        estimated_seconds_per_frame,
        max_chunk_frames,
    )

    fp32, bf16 = JobParams(), JobParams(precision="bf16")
    assert estimated_seconds_per_frame(bf16) == estimated_seconds_per_frame(fp32)  # bf16 may fall back to fp32
    for params in (fp32, JobParams(size=512)):
        most = max_chunk_frames(params)
        assert most * estimated_seconds_per_frame(params) <= CHUNK_TIME_BUDGET_S
        assert make_plan(30_000, params, concurrency=1).chunk_frames <= most
        if params.size == 512:  # more chunks than a plan may have, each within the budget: refused by name
            with pytest.raises(InvalidParams, match=f"at most {1000 * most / 25:.0f} s of speech"):
                make_plan(100_000, params, concurrency=1)
        check_chunk_budget(JobParams(size=params.size, chunk_frames=most))
        with pytest.raises(InvalidParams, match=f"at most {most}"):
            check_chunk_budget(JobParams(size=params.size, chunk_frames=most + 2))


def test_a_job_that_could_not_finish_is_refused_before_rendering():
    from sadtalker.errors import ClipTooLong
    from sadtalker.stages.plan_chunks import check_time_limits
    from statemachine import timeouts

    limits = timeouts()
    assert limits["execution"] == 21600 and limits["Finalize"] == 10800 and limits["FinalizeLambda"] == 960
    gfpgan = JobParams(enhancer="gfpgan")
    short = check_time_limits(make_plan(200, gfpgan, 10), gfpgan, 4, 1500, limits)  # 8 s
    assert short.finalize_on_fargate and short.total_s < 0.9 * limits["execution"]
    five_minutes = make_plan(7500, gfpgan, 10)
    with pytest.raises(ClipTooLong, match=r"for Finalize, more than its limit of 180 minutes; at most about \d+ s"):
        check_time_limits(five_minutes, gfpgan, 4, 1500, limits)
    check_time_limits(five_minutes, gfpgan, 16, 1500, limits)  # a 16 vCPU task finishes it
    plain = JobParams()
    assert not check_time_limits(make_plan(7500, plain, 10), plain, 4, 10_000, limits).finalize_on_fargate

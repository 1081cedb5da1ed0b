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
    from sadtalker.stages.plan_chunks import FARGATE_START_S, check_time_limits

    limits = {"execution": 21600, "EnhanceRanges": 3600, "Finalize": 900}
    gfpgan = JobParams(enhancer="gfpgan")
    short = check_time_limits(make_plan(200, gfpgan, 10), gfpgan, 4, limits)  # 8 s
    assert FARGATE_START_S < short.enhance_s < 0.9 * limits["EnhanceRanges"] and short.total_s < 0.9 * 21600
    # ranges run at once: their wall time grows with the clip only once MAX_RANGES is reached
    assert check_time_limits(make_plan(15000, gfpgan, 40), gfpgan, 4, limits).enhance_s < 0.9 * 3600  # ten minutes
    half_hour = make_plan(45000, gfpgan, 40)
    assert len(half_hour.ranges) == 40
    with pytest.raises(ClipTooLong, match=r"for its enhancement, more than its limit of 60 minutes; at most about \d+ s"):
        check_time_limits(half_hour, gfpgan, 4, limits)
    check_time_limits(make_plan(45000, gfpgan, 40, 16), gfpgan, 16, limits)  # 16 vCPU tasks finish it
    plain = JobParams()
    p = check_time_limits(make_plan(7500, plain, 10), plain, 4, limits)
    assert p.enhance_s == 0 and p.total_s < 0.9 * 21600
    with pytest.raises(ClipTooLong, match="for the job"):
        check_time_limits(make_plan(7500, plain, 1), plain, 4, limits)  # one chunk at a time: 7500 frames in a row


def test_enhancement_ranges_are_runs_of_whole_chunks_sized_by_their_cost(tmp_path):
    from sadtalker.stages.plan_chunks import (
        MAX_RANGES,
        RANGE_TARGET_S,
        enhance_seconds_per_frame,
    )

    plain = make_plan(1000, JobParams(), 10)
    assert plain.ranges == [] and plain.segments == plain.chunks
    both, face_only = JobParams(enhancer="gfpgan"), JobParams(enhancer="gfpgan", background_enhancer="")
    assert enhance_seconds_per_frame(both, 4) > 2 * enhance_seconds_per_frame(face_only, 4)
    for params, vcpus in ((both, 4), (face_only, 4), (both, 16)):
        plan = make_plan(1000, params, 40, vcpus)
        assert plan.segments == plan.ranges
        check_plan(plan.ranges, 1000, "enhancement range")
        starts = {c["start"] for c in plan.chunks}
        ends = {c["end"] for c in plan.chunks}
        assert all(r["start"] in starts and r["end"] in ends for r in plan.ranges)
        per_frame = enhance_seconds_per_frame(params, vcpus)
        # each range within the target unless it is a single chunk; merging the next chunk would pass it
        for r in plan.ranges:
            assert (r["end"] - r["start"]) * per_frame <= RANGE_TARGET_S or [r["start"], r["end"]] == [
                r["start"], min(r["start"] + plan.chunk_frames, 1000)]
        for a, b in zip(plan.ranges, plan.ranges[1:], strict=False):
            assert (b["start"] + plan.chunk_frames - a["start"]) * per_frame > RANGE_TARGET_S
    # cheaper frames (more vCPUs, no background) make fewer, longer ranges
    assert len(make_plan(1000, both, 40, 16).ranges) < len(make_plan(1000, both, 40, 4).ranges)
    assert len(make_plan(1000, face_only, 40, 4).ranges) < len(make_plan(1000, both, 40, 4).ranges)
    # a small deployed range target: one range per chunk (how a short test clip gets several)
    tiny = make_plan(48, both, 10, 4, range_seconds=1)
    assert tiny.ranges == tiny.chunks and len(tiny.ranges) == 3
    # a long clip is capped at MAX_RANGES, still on chunk boundaries
    long = make_plan(30_000, both, 40, 4, range_seconds=1)
    assert len(long.ranges) == MAX_RANGES
    check_plan(long.ranges, 30_000, "enhancement range")

    storage, job = LocalStorage(tmp_path), JobKeys("plan-ranges")
    plan = make_plan(1000, both, 40)
    plan.write(storage, job)
    assert ChunkPlan.read(storage, job) == plan
    import json

    assert json.loads(storage.get(job.chunk_items)) == plan.chunks
    assert json.loads(storage.get(job.range_items)) == plan.ranges
    bad = ChunkPlan(plan.num_frames, plan.chunk_frames, 40, plan.chunks,
                    [{"start": 0, "end": 30}, {"start": 30, "end": 1000}])
    storage.put(job.plan, bad.to_json())
    with pytest.raises(InvalidChunk, match="splits a render chunk"):
        ChunkPlan.read(storage, job)

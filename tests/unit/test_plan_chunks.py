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
    chunks = plan_chunks(300_000, JobParams(chunk_frames=1), concurrency=10)
    assert len(chunks) <= MAX_CHUNKS
    check_plan(chunks, 300_000)


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

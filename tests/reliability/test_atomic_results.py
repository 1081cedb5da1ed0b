"""Atomic results: video.mp4 appears complete in one step (temporary work/ key, then copy), result.json is
written LAST, and a failure between any two writes leaves neither video.mp4 nor result.json.

The order is checked on the real job (every storage operation of every handler recorded) and, for the
failure points, on the finalize stage itself with a storage that fails at each write in turn."""

from __future__ import annotations

import pytest
from rel_helpers import assert_succeeded, encode, portrait_image, short_speech

from sadtalker.local import LocalRuntime
from sadtalker.local.memstore import MemoryStorage

pytestmark = pytest.mark.job  # whole jobs through the local state machine

JOB = "atomic"


class Recording:
    """Wraps a Storage; records (op, key[, source]) of every write/delete, optionally fails one of them."""

    def __init__(self, inner, log: list, fail_at: tuple[str, str] | None = None):
        self.inner, self.log, self.fail_at = inner, log, fail_at

    def _op(self, op: str, key: str, *extra):
        if self.fail_at == (op, key):
            raise ConnectionError(f"simulated storage failure on {op} {key}")
        self.log.append((op, key, *extra))

    def put(self, key, data):
        self._op("put", key)
        self.inner.put(key, data)

    def copy(self, src, dst):
        self._op("copy", dst, src)
        self.inner.copy(src, dst)

    def delete(self, key):
        self._op("delete", key)
        self.inner.delete(key)

    def put_npz(self, key, arrays, compress=False):  # through our put, so it is recorded
        type(self.inner).put_npz(self, key, arrays, compress)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def job(reduced_weights):
    from functions import common

    log: list = []
    real = common._storage_factory
    common.set_storage_factory(lambda bucket: Recording(real(bucket), log))
    try:
        with LocalRuntime(reduced_weights, workers=0, bucket="sadtalker-atomic") as rt:
            s3 = rt.client("s3")
            s3.put_object(Bucket=rt.bucket, Key=f"inbox/{JOB}/face.png", Body=encode(portrait_image(), "PNG"))
            s3.put_object(Bucket=rt.bucket, Key=f"inbox/{JOB}/speech.wav", Body=short_speech(0.12))
            desc = rt.wait(rt.start_execution(JOB, {"image": f"s3://{rt.bucket}/inbox/{JOB}/face.png",
                                                    "audio": f"s3://{rt.bucket}/inbox/{JOB}/speech.wav"}), timeout=600)
            assert_succeeded(rt, JOB, desc)
            work = {k: rt.get(k) for k in rt.keys(f"work/{JOB}/")}
            yield {"log": list(log), "work": work, "desc": desc}
    finally:
        common.set_storage_factory(real)


def test_outputs_are_written_in_reader_safe_order(job):
    log = job["log"]
    # the stream (outputs/<job>/stream*) is published while the job runs; Finalize closes it before result.json
    stream = [i for i, e in enumerate(log) if e[1].startswith(f"outputs/{JOB}/stream")]
    assert stream and max(stream) < log.index(("put", f"outputs/{JOB}/result.json"))
    outputs = [entry for entry in log if entry[1].startswith(f"outputs/{JOB}/") and not is_stream(entry[1])]
    assert [e[:2] for e in outputs] == [
        ("put", f"outputs/{JOB}/preview.jpg"),
        ("copy", f"outputs/{JOB}/video.mp4"),
        ("put", f"outputs/{JOB}/result.json"),
    ]
    assert outputs[1][2] == f"work/{JOB}/video.partial.mp4"  # the video arrives as one copy of a complete object
    i_partial = log.index(("put", f"work/{JOB}/video.partial.mp4"))
    i_copy = log.index(outputs[1])
    i_result = log.index(outputs[2])
    assert i_partial < i_copy < i_result
    # after result.json: nothing touches outputs/ again; the temporary video is cleaned up
    after = log[i_result + 1:]
    assert not [e for e in after if e[1].startswith("outputs/")], after
    assert ("delete", f"work/{JOB}/video.partial.mp4") in after


def is_stream(key: str) -> bool:
    return key.startswith(f"outputs/{JOB}/stream")


def _finalize_on(storage, reduced_weights):
    from sadtalker.jobs import JobKeys
    from sadtalker.stages.finalize import finalize
    from sadtalker.weights import ModelStore

    return finalize(storage, JobKeys(JOB), ModelStore.open(str(reduced_weights)))


FAIL_POINTS = [
    ("put", f"work/{JOB}/video.partial.mp4"),
    ("put", f"outputs/{JOB}/preview.jpg"),
    ("copy", f"outputs/{JOB}/video.mp4"),
    ("put", f"outputs/{JOB}/result.json"),
]


@pytest.mark.parametrize("fail_at", FAIL_POINTS, ids=lambda f: f"{f[0]}-{f[1].rsplit('/', 1)[1]}")
def test_a_failure_between_writes_leaves_no_result(job, reduced_weights, fail_at):
    memory = MemoryStorage(job["work"])
    log: list = []
    with pytest.raises(ConnectionError):
        _finalize_on(Recording(memory, log, fail_at), reduced_weights)
    assert [k for k in memory.list(f"outputs/{JOB}/") if not is_stream(k)] == []  # RecordFailure removes the stream
    assert not memory.exists(f"work/{JOB}/video.partial.mp4")


def test_finalize_again_on_the_same_work_gives_the_same_video(job, reduced_weights):
    """A retried finalize (same work objects) reproduces the result: it is safe to run twice."""
    import hashlib
    import json

    memory = MemoryStorage(job["work"])
    _finalize_on(memory, reduced_weights)
    result = json.loads(memory.get(f"outputs/{JOB}/result.json"))
    assert result["hashes"]["video_sha256"] == hashlib.sha256(memory.get(f"outputs/{JOB}/video.mp4")).hexdigest()
    assert memory.written[-1] == f"outputs/{JOB}/result.json"

"""The storage interface: the local backend and the S3 backend (against moto) behave the same."""

from __future__ import annotations

import boto3
import numpy as np
import pytest
from moto import mock_aws

from sadtalker.errors import InvalidInput
from sadtalker.jobs import JobKeys
from sadtalker.storage import LocalStorage, S3Storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        yield LocalStorage(tmp_path)
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="test-bucket")
        yield S3Storage("test-bucket", client)


def test_put_get_list_delete(storage):
    storage.put("work/j/a.bin", b"123")
    storage.put("work/j/sub/b.bin", b"4")
    assert storage.get("work/j/a.bin") == b"123"
    assert storage.exists("work/j/a.bin") and not storage.exists("work/j/zz")
    assert storage.list("work/j/") == ["work/j/a.bin", "work/j/sub/b.bin"]
    storage.delete("work/j/a.bin")
    assert storage.list("work/") == ["work/j/sub/b.bin"]
    with pytest.raises(KeyError):
        storage.get("work/j/a.bin")


def test_npz_round_trip(storage):
    storage.put_npz("work/j/x.npz", {"a": np.arange(5, dtype=np.float32)})
    assert storage.get_npz("work/j/x.npz")["a"].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_unsafe_keys_are_refused(storage, key):
    with pytest.raises(ValueError):
        storage.put(key, b"x")


def test_local_put_is_atomic(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path)
    store.put("k/v", b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        store.put("k/v", b"new")
    assert store.get("k/v") == b"old"
    assert store.list("k/") == ["k/v"]


def test_job_keys():
    keys = JobKeys("job_1")
    assert keys.chunk(0, 25) == "work/job_1/chunks/000000-000025.npz"
    assert keys.video == "outputs/job_1/video.mp4"
    for bad in ["", "../x", "a/b", "a" * 81, "-x", "sp ace"]:
        with pytest.raises(InvalidInput):
            JobKeys(bad)

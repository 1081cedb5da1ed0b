"""``Storage.size``: the object's length from metadata (a stat, S3's HEAD), the same answer in every backend,
KeyError for a missing key, and under the local policy the permission S3 asks for a HEAD (s3:GetObject)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from functions.contract import CONTRACTS
from sadtalker.errors import AccessDenied
from sadtalker.local.memstore import MemoryStorage
from sadtalker.local.policy import GuardedStorage, S3Policy
from sadtalker.storage import LocalStorage, S3Storage

BUCKET = "size-bucket"


@pytest.fixture(params=["local", "s3", "memory"])
def storage(request, tmp_path):
    if request.param == "local":
        yield LocalStorage(tmp_path)
    elif request.param == "memory":
        yield MemoryStorage()
    else:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield S3Storage(BUCKET, client)


def test_size_is_the_objects_length_and_a_missing_key_is_keyerror(storage):
    storage.put("inbox/j/a.wav", b"x" * 12345)
    storage.put("inbox/j/empty.wav", b"")
    assert storage.size("inbox/j/a.wav") == 12345
    assert storage.size("inbox/j/empty.wav") == 0
    with pytest.raises(KeyError):
        storage.size("inbox/j/none.wav")


def test_s3_size_is_a_head_not_a_download():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="inbox/j/big.wav", Body=b"\0" * 3_000_000)
        calls: list[str] = []
        client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
        assert S3Storage(BUCKET, client).size("inbox/j/big.wav") == 3_000_000
        assert calls == ["HeadObject"]


def test_guarded_size_needs_get_object_on_the_key():
    arn = f"arn:aws:s3:::{BUCKET}"
    inner = MemoryStorage({"inbox/j/a.wav": b"abc", "work/j/audio.npz": b"12345"})
    validate = GuardedStorage(inner, S3Policy(BUCKET, tuple(CONTRACTS["validate_job"].s3_statements(arn))))
    assert validate.size("inbox/j/a.wav") == 3
    with pytest.raises(AccessDenied, match="was denied"):
        validate.size("work/j/audio.npz")  # ValidateJob may read (and list) inbox/ only
    plan = GuardedStorage(inner, S3Policy(BUCKET, tuple(CONTRACTS["plan_chunks"].s3_statements(arn))))
    with pytest.raises(AccessDenied):
        plan.size("inbox/j/a.wav")  # a role that reads nothing gets 403, as S3 answers a HEAD

"""The local enforcement of a role's S3 statements answers as S3 does (403 vs 404, prefixes, conditions),
and S3's own 403 becomes the same named error."""

from __future__ import annotations

import pytest

from functions.contract import CONTRACTS
from sadtalker.errors import AccessDenied
from sadtalker.local.memstore import MemoryStorage
from sadtalker.local.policy import GuardedStorage, S3Policy

BUCKET = "b"
ARN = f"arn:aws:s3:::{BUCKET}"


def guarded(name: str, objects: dict[str, bytes] | None = None) -> GuardedStorage:
    return GuardedStorage(MemoryStorage(objects), S3Policy(BUCKET, tuple(CONTRACTS[name].s3_statements(ARN))))


def test_a_stage_reads_and_writes_exactly_its_keys():
    s = guarded("audio2coeff", {"work/j/face.npz": b"f", "work/j/source.png": b"p", "inbox/j/a.wav": b"a"})
    assert s.get("work/j/face.npz") == b"f"
    assert s.exists("work/j/coeffs.npz") is False  # may list: a missing key it may read is a 404
    s.put("work/j/coeffs.npz", b"c")
    for denied in (lambda: s.get("work/j/source.png"), lambda: s.get("inbox/j/a.wav"),
                   lambda: s.put("work/j/chunks/000000-000002.npz", b""), lambda: s.delete("work/j/coeffs.npz"),
                   lambda: s.put("outputs/j/video.mp4", b"")):
        with pytest.raises(AccessDenied, match="was denied"):
            denied()


def test_a_role_without_list_gets_403_for_missing_keys_it_may_read():
    s = guarded("plan_chunks")  # write only: no GetObject, no ListBucket
    with pytest.raises(AccessDenied, match="s3:ListBucket"):
        s.exists("work/j/plan.json")
    with pytest.raises(AccessDenied, match="s3:ListBucket"):
        s.get("work/j/plan.json")
    with pytest.raises(AccessDenied, match="s3:ListBucket"):
        s.list("work/j/")
    s.put("work/j/plan.json", b"{}")
    policy = S3Policy(BUCKET, ({"Sid": "R", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{ARN}/work/*"},))
    with pytest.raises(AccessDenied):
        GuardedStorage(MemoryStorage(), policy).get("work/j/missing.npz")  # readable, but no ListBucket: 403


def test_list_prefix_conditions_and_unsupported_statements():
    st = {"Sid": "L", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": ARN,
          "Condition": {"StringLike": {"s3:prefix": ["inbox/*"]}}}
    policy = S3Policy(BUCKET, (st,))
    assert policy.may_list("inbox/job/") and not policy.may_list("work/job/") and not policy.may_list()
    with pytest.raises(ValueError, match="unsupported"):
        S3Policy(BUCKET, ({"Effect": "Deny", "Action": "s3:*", "Resource": "*"},))
    with pytest.raises(ValueError, match="unsupported condition"):
        S3Policy(BUCKET, ({**st, "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}},))


def test_listing_is_limited_to_the_prefixes_a_stage_reads():
    s = guarded("audio2coeff", {"work/j/source.png": b"p"})
    assert s.exists("work/j/coeffs.npz") is False
    with pytest.raises(KeyError):
        s.get("work/j/coeffs.npz")  # absent, and its prefix may be listed: a plain missing key
    with pytest.raises(AccessDenied, match="s3:ListBucket on s3://b/work/j/source.png"):
        s.exists("work/j/source.png")
    with pytest.raises(AccessDenied, match="s3:ListBucket"):
        s.list("work/j/")


def test_s3_storage_turns_403_into_access_denied():
    import boto3
    from botocore.stub import Stubber

    from sadtalker.storage import S3Storage

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
    listed = {"Bucket": BUCKET, "Prefix": "work/j/y", "MaxKeys": 1}
    stub.add_response("list_objects_v2", {"KeyCount": 0}, listed)
    # a 403 on a read: the key is listed to tell "missing" from "forbidden"
    stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    stub.add_response("list_objects_v2", {"KeyCount": 0}, listed)
    stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    stub.add_response("list_objects_v2", {"KeyCount": 1, "Contents": [{"Key": "work/j/y"}]}, listed)
    with stub:
        storage = S3Storage(BUCKET, client)
        with pytest.raises(AccessDenied, match="s3:PutObject on s3://b/work/j/x was denied"):
            storage.put("work/j/x", b"1")
        assert storage.exists("work/j/y") is False
        with pytest.raises(KeyError):
            storage.get("work/j/y")
        with pytest.raises(AccessDenied, match="s3:GetObject on s3://b/work/j/y"):
            storage.get("work/j/y")

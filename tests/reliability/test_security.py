"""Security checks: least-privilege IAM and a private SSL-only bucket (on the ONE synthesized template of
the session), size guards that run before any decoding, argument-list subprocesses, no secrets in logs."""

from __future__ import annotations

import ast
import json
import sys
import time
import tracemalloc
import wave
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from rel_helpers import ROOT, wav_bytes

from sadtalker.errors import InvalidAudio, InvalidImage

PRESIGNED = ("https://my-bucket.s3.amazonaws.com/face.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261126%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLETOKEN&X-Amz-Signature=0123456789abcdef")
SECRETS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLETOKEN",
           "0123456789abcdef", "hunter2")


# --- the synthesized template (shared with tests/infra: one synth per session) ----------------------------------
def _cdk_template_module():
    """tests/infra's synth helper module (the one its session fixture uses)."""
    if "cdk_template" not in sys.modules:
        sys.path.insert(0, str(ROOT / "tests" / "infra"))
    import cdk_template

    return cdk_template


@pytest.fixture(scope="session")
def template(request, tmp_path_factory) -> dict:
    """tests/infra's session synth when it already ran in this session, else the same synth, once."""
    try:  # pytest keeps session fixture values on their definitions until the session ends
        for fd in request._fixturemanager._arg2fixturedefs.get("synthesized", []):
            cached = getattr(fd, "cached_result", None)
            if cached and cached[0] is not None:
                return cached[0].template
    except AttributeError:
        pass
    return _cdk_template_module().synth(tmp_path_factory.mktemp("cdk-out")).template


def _resources(t: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == rtype}


def _job_bucket(t: dict) -> str:
    (lid,) = [k for k, v in _resources(t, "AWS::S3::Bucket").items()
              if any(r.get("Prefix") == "work/" for r in v["Properties"].get("LifecycleConfiguration", {}).get("Rules", []))]
    return lid


def _statements(t: dict):
    for lid, res in t["Resources"].items():
        docs = []
        if res["Type"] == "AWS::IAM::Policy":
            docs.append(res["Properties"]["PolicyDocument"])
        elif res["Type"] == "AWS::IAM::Role":
            docs += [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        for doc in docs:
            for st in doc["Statement"]:
                yield lid, st


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _object_suffixes(resource, bucket_id: str) -> list[str] | None:
    """``<bucket ARN>/work/*`` -> "work/*"; None when the resource is not an object ARN of the job bucket."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        parts = resource["Fn::Join"][1]
        if parts and parts[0] == {"Fn::GetAtt": [bucket_id, "Arn"]}:
            return ["".join(str(p) for p in parts[1:]).lstrip("/")]
    return None


def test_no_wildcard_actions_and_no_star_resources_for_s3(template):
    for lid, st in _statements(template):
        if st["Effect"] != "Allow":
            continue
        for action in _as_list(st["Action"]):
            assert "*" not in action, f"{lid}: wildcard action {action}"
            if action.startswith("s3:"):
                assert "*" not in _as_list(st["Resource"]), f"{lid}: {action} on every resource"


def test_job_bucket_object_access_is_limited_to_pipeline_prefixes(template):
    bucket = _job_bucket(template)
    seen = set()
    for lid, st in _statements(template):
        if st["Effect"] != "Allow":
            continue
        for action in _as_list(st["Action"]):
            if action not in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
                continue
            for r in _as_list(st["Resource"]):
                suffixes = _object_suffixes(r, bucket)
                if suffixes is None:
                    continue
                (key,) = suffixes
                seen.add((action, key))
                assert key.split("/")[0] in ("inbox", "work", "outputs"), f"{lid}: {action} on {key}"
                assert key != "*", f"{lid}: {action} on the whole bucket"
                if key.startswith("inbox/"):
                    assert action == "s3:GetObject", f"{lid}: inputs are read-only, found {action}"
                if action == "s3:DeleteObject":  # only results of failed jobs, their stream and the temporary video
                    assert key in ("work/*/video.partial.mp4", "outputs/*/result.json", "outputs/*/video.mp4",
                                   "outputs/*/preview.jpg", "outputs/*/stream.m3u8", "outputs/*/stream/*"), \
                        f"{lid}: deletes {key}"
    assert ("s3:GetObject", "inbox/*") in seen and ("s3:PutObject", "outputs/*/error.json") in seen


def test_job_bucket_is_private_ssl_only_and_expires_work_after_7_days(template):
    bucket = _job_bucket(template)
    props = template["Resources"][bucket]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = [r for r in props["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "work/"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 7
    policies = [p for p in _resources(template, "AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": bucket}]
    (policy,) = policies
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" and
               s["Principal"] == {"AWS": "*"} for s in denies)
    for s in policy["Properties"]["PolicyDocument"]["Statement"]:
        if s["Effect"] == "Allow":
            assert s.get("Principal") not in ("*", {"AWS": "*"}), "the job bucket grants public access"


# --- guards before decoding --------------------------------------------------------------------------------------
def _png_header(side_w: int, side_h: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side_w, side_h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("w,h", [(30000, 30000), (8000, 8000), (20000, 100)])
def test_decompression_bombs_are_refused_from_the_header_fast_and_small(w, h):
    from PIL import ImageFile

    from sadtalker.face.image import decode_image
    from sadtalker.stages.validate_job import inspect_image

    data = _png_header(w, h)
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("pixels were decoded")):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(InvalidImage, match="pixels"):
                decode_image(data, "face.png")
            if max(w, h) > 8192:  # ValidateJob's limit is per side; the pixel budget is checked in Preprocess
                with pytest.raises(InvalidImage, match="pixels"):
                    inspect_image(data, "face.png")
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert elapsed < 0.5, elapsed
    assert peak < 5_000_000, peak  # a decoded 30000^2 RGB image would be 2.7 GB


def _long_wav(path: Path, seconds: float, hide_length: bool = False) -> Path:
    pcm = (np.sin(np.arange(int(16000 * seconds)) / 8.0) * 8000).astype(np.int16)
    data = bytearray(wav_bytes(pcm, 16000))
    if hide_length:  # streaming writers leave 0xFFFFFFFF: the header no longer tells the length
        data[4:8] = b"\xff\xff\xff\xff"
        data[40:44] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def test_audio_over_the_limit_is_refused_before_decoding(tmp_path):
    from sadtalker.audio import decode

    path = _long_wav(tmp_path / "long.wav", 4.0)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 64000
    with mock.patch.object(decode, "_decode_native", side_effect=AssertionError("decoded")) as native:
        with pytest.raises(InvalidAudio, match="max_audio_seconds"):
            decode.decode_audio(path, max_seconds=1.0)
    native.assert_not_called()


def test_audio_hiding_its_length_is_decoded_only_up_to_the_limit(tmp_path):
    from sadtalker.audio import decode

    path = _long_wav(tmp_path / "hidden.wav", 4.0, hide_length=True)
    real = decode._decode_native
    calls = []

    def spy(p, limit_seconds):
        calls.append(limit_seconds)
        out = real(p, limit_seconds)
        calls.append(out[0].shape[0] / out[1])
        return out

    with mock.patch.object(decode, "_decode_native", spy):
        with pytest.raises(InvalidAudio, match="max_audio_seconds"):
            decode.decode_audio(path, max_seconds=1.0)
    # refused from ffmpeg's estimate before decoding, or decoded only just past the limit: never the whole 4 s
    assert not calls or (calls[0] <= 2.0 and calls[1] <= 2.01), calls


# --- subprocesses ---------------------------------------------------------------------------------------------------
SOURCE_DIRS = ("layers", "functions", "infra", "benchmarks", "tests")


def _python_sources() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts]


def _call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def test_no_shell_anywhere_and_subprocess_gets_argument_lists():
    problems = []
    sources = _python_sources()
    assert len(sources) > 50
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where}: shell={ast.unparse(kw.value)}")
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "os.execl",
                        "os.execlp", "os.spawnl", "os.spawnlp", "commands.getoutput"):
                problems.append(f"{where}: {name}")
            if name.split(".")[-1] in ("run", "Popen", "call", "check_call", "check_output") \
                    and name.startswith("subprocess") and node.args:
                first = node.args[0]
                if isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{where}: {name} with a command string")
    assert not problems, problems


# --- logs --------------------------------------------------------------------------------------------------------------
def test_logs_redact_credentials_presigned_urls_and_keys(monkeypatch):
    import io

    from functions import validate_job
    from functions.observability import logger

    stream = io.StringIO()  # the logger's own handler, pointed at a buffer (whatever captured it before)
    old = logger.registered_handler.setStream(stream)
    monkeypatch.setenv("SADTALKER_BUCKET", "sadtalker-sec")
    try:
        _log_secrets(validate_job, logger)
    finally:
        logger.registered_handler.setStream(old)
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(rec.get("message") == "stage failed" for rec in lines), text
    assert any(rec.get("message") == "received" for rec in lines), text
    for secret in SECRETS:
        assert secret not in text, secret
    received = next(rec for rec in lines if rec.get("message") == "received")
    assert received["event"]["image"] == "s3://sadtalker-sec/inbox/sec/face.png"  # ordinary fields stay readable
    assert "REDACTED" not in received["location"]  # code locations are not secrets


def _log_secrets(validate_job, logger) -> None:
    event = {"job_id": "sec", "input": {"image": PRESIGNED, "audio": "inbox/sec/a.wav"}, "max_concurrency": 10}
    with pytest.raises(Exception) as info:
        validate_job.handler(event, None)
    assert type(info.value).__name__ == "InvalidInput"
    assert "[REDACTED]" in str(info.value) and "AKIA" not in str(info.value)
    logger.warning("received", extra={
        "event": {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
                  "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  "headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/x"},
                  "password": "hunter2", "url": PRESIGNED, "image": "s3://sadtalker-sec/inbox/sec/face.png"},
        "note": "key AKIAIOSFODNN7EXAMPLE used with SessionToken=FwoGZXIvYXdzEXAMPLETOKEN",
    })

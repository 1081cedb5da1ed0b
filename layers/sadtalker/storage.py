"""Where a job's artefacts live: one small interface, a local-directory backend and an S3 backend.

Keys are '/'-separated strings (``work/<job>/coeffs.npz``). ``put`` is atomic for readers in both
backends: a local file is written under a temporary name and renamed; an S3 PUT is atomic by nature.
The S3 backend is the only place in the library that imports boto3 (lazily).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import AccessDenied, InvalidInput


class Storage(ABC):
    @abstractmethod
    def get(self, key: str, limit: int | None = None) -> bytes:
        """The object's bytes (the first ``limit`` of them when given); KeyError when it does not exist."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]: ...

    def size(self, key: str) -> int:
        """The object's size in bytes; KeyError when it does not exist. Backends answer from metadata
        (a stat, a HEAD request); this fallback reads the object and serves any other backend."""
        return len(self.get(key))

    # Lifetime (s) of the links this storage puts into documents it writes (playlists); None: such
    # documents name objects by relative key (a directory is served as files). Set per function.
    link_expiry_s: int | None = None

    def presign(self, key: str, expires_s: int) -> str | None:
        """A URL anyone can GET the object with for ``expires_s`` seconds; None for a backend that has
        no URLs (a directory, memory)."""
        return None

    def link(self, key: str) -> str | None:
        """The URL a written document names ``key`` by (``link_expiry_s``), or None: a relative key."""
        return self.presign(key, self.link_expiry_s) if self.link_expiry_s else None

    # --- conveniences shared by every backend -------------------------------------------------------
    def copy(self, src: str, dst: str) -> None:
        """``dst`` becomes a complete copy of ``src`` (atomic for readers, like ``put``)."""
        self.put(dst, self.get(src))

    def require(self, key: str, what: str) -> bytes:
        """An earlier stage's output: its absence is one named error wherever a stage reads it."""
        try:
            return self.get(key)
        except KeyError:
            raise InvalidInput(
                f"the {what} ({key}) is missing: an earlier stage did not finish, or it was removed while the job ran"
            ) from None

    def require_npz(self, key: str, what: str) -> dict[str, np.ndarray]:
        return self._npz(self.require(key, what))

    def get_npz(self, key: str) -> dict[str, np.ndarray]:
        return self._npz(self.get(key))

    @staticmethod
    def _npz(data: bytes) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def put_npz(self, key: str, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays)
        self.put(key, buf.getvalue())


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class LocalStorage(Storage):
    """A directory on disk standing in for the bucket (tests, local tools)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def get(self, key: str, limit: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read(-1 if limit is None else limit)
        except FileNotFoundError:
            raise KeyError(key) from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))


class S3Storage(Storage):
    """A bucket through boto3 (on AWS and against moto).

    S3's 403 becomes the named ``AccessDenied`` (naming the action and the key): a role that lacks a
    permission is a deployment defect, and the job's error.json should say so rather than "crashed"."""

    # SigV4 query signatures last at most 7 days (and never longer than the signer's session).
    MAX_PRESIGN_S = 7 * 24 * 3600

    def __init__(self, bucket: str, client=None, link_expiry_s: int | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        # SigV4 explicitly: botocore presigns S3 URLs with the legacy SigV2 by default, which buckets made
        # since mid-2020 refuse (a given client is used as configured).
        self.client = client or boto3.client("s3", config=Config(signature_version="s3v4"))
        self.link_expiry_s = link_expiry_s

    @contextlib.contextmanager
    def _denied_as_named(self, action: str, key: str) -> Iterator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403", "Forbidden"):
                raise AccessDenied(denial(action, self.bucket, key)) from None
            raise

    def get(self, key: str, limit: int | None = None) -> bytes:
        extra = {} if limit is None else {"Range": f"bytes=0-{max(0, limit - 1)}"}
        try:
            with self._missing_told_apart("s3:GetObject", key):
                return self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None

    @contextlib.contextmanager
    def _missing_told_apart(self, action: str, key: str) -> Iterator[None]:
        """S3 answers 403 for a missing key unless the role may list the bucket without conditions; our
        roles list only their own prefixes, so a 403 is resolved by listing the key: absent -> KeyError."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "403", "Forbidden"):
                raise
            if not self.exists(key):
                raise KeyError(key) from None
            raise AccessDenied(denial(action, self.bucket, key)) from None

    def put(self, key: str, data: bytes) -> None:
        with self._denied_as_named("s3:PutObject", key):
            self.client.put_object(Bucket=self.bucket, Key=_check_key(key), Body=data)

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy: the bytes are not downloaded again (objects up to 5 GB)."""
        try:
            with self._denied_as_named("s3:GetObject+s3:PutObject", f"{src} -> {dst}"):
                self.client.copy_object(Bucket=self.bucket, Key=_check_key(dst),
                                        CopySource={"Bucket": self.bucket, "Key": src})
        except self.client.exceptions.NoSuchKey:
            raise KeyError(src) from None

    def exists(self, key: str) -> bool:
        """A listing of the key itself (s3:ListBucket on its prefix), not a HEAD: a HEAD of a missing key
        is 403 for a role whose listing is limited to prefixes."""
        with self._denied_as_named("s3:ListBucket", key):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in page.get("Contents", []))

    def size(self, key: str) -> int:
        """HeadObject's ContentLength (the same s3:GetObject permission as reading the object)."""
        from botocore.exceptions import ClientError

        try:
            with self._missing_told_apart("s3:GetObject", key):
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(key) from None
            raise

    def presign(self, key: str, expires_s: int) -> str:
        """A GetObject URL signed locally with this client's credentials (no request is made: whether the
        signer may read the key shows only when the URL is used)."""
        if not 1 <= int(expires_s) <= self.MAX_PRESIGN_S:
            raise ValueError(f"a presigned link lasts 1..{self.MAX_PRESIGN_S} s, got {expires_s}")
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": _check_key(key)}, ExpiresIn=int(expires_s))

    def delete(self, key: str) -> None:
        with self._denied_as_named("s3:DeleteObject", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> list[str]:
        keys = []
        with self._denied_as_named("s3:ListBucket", prefix + "*"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", [])]
        return sorted(keys)


def denial(action: str, bucket: str, key: str) -> str:
    """The one AccessDenied sentence, for S3's 403 and for the local runtime's policy check alike."""
    return (f"{action} on s3://{bucket}/{key} was denied: this stage's role does not allow it "
            "(a deployment defect: the stage and its IAM policy disagree)")

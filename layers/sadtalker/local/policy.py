"""The deployed S3 policy of a function, enforced over every storage call of a local run.

moto can enforce IAM, but only for calls made with a principal's credentials through its HTTP layer;
the local runtime's handlers share one process (and render workers use an in-memory copy), so the
check sits one level up instead: ``GuardedStorage`` asks ``S3Policy`` before each call, as S3 asks IAM.
The statements are the ones of the function's role in the deployed template (or, identically by test,
the ones the contract derives); the answer mirrors S3's:

* GetObject / PutObject / DeleteObject need an Allow on ``arn:aws:s3:::<bucket>/<key>``;
* ListObjectsV2 needs ``s3:ListBucket`` on the bucket, its ``s3:prefix`` condition honoured;
* a read S3 answers with 403 is resolved as S3Storage resolves it: by listing the key (KeyError when the
  key is absent, AccessDenied when the listing is denied or the object exists but may not be read).

Only Allow statements with Action/Resource (and StringLike/StringEquals on ``s3:prefix``) are
evaluated: those are the only ones the stack writes. A Deny, NotAction or an unknown condition makes the
policy refuse to load, so a template that grows one cannot be enforced wrongly in silence.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from ..errors import AccessDenied
from ..storage import Storage, denial


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _glob(pattern: str, value: str) -> bool:
    # IAM's '*' matches any run of characters (also '/'); '?' one character. fnmatch's [..] sets are
    # not IAM syntax, so they are escaped.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


@dataclass(frozen=True)
class S3Policy:
    bucket: str
    statements: tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        for st in self.statements:
            if st.get("Effect") != "Allow" or "Action" not in st or "Resource" not in st:
                raise ValueError(f"unsupported policy statement for local enforcement: {st}")
            for op, cond in (st.get("Condition") or {}).items():
                if op not in ("StringLike", "StringEquals") or set(cond) != {"s3:prefix"}:
                    raise ValueError(f"unsupported condition for local enforcement: {op} {cond}")

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    def allows(self, action: str, resource: str, prefix: str | None = None) -> bool:
        for st in self.statements:
            if not any(_glob(a, action) for a in _as_list(st["Action"])):
                continue
            if not any(isinstance(r, str) and _glob(r, resource) for r in _as_list(st["Resource"])):
                continue
            if self._conditions_hold(st.get("Condition") or {}, prefix):
                return True
        return False

    @staticmethod
    def _conditions_hold(conditions: dict, prefix: str | None) -> bool:
        for op, cond in conditions.items():
            wanted = _as_list(cond["s3:prefix"])
            if prefix is None:
                return False
            match = _glob if op == "StringLike" else (lambda p, v: p == v)
            if not any(match(w, prefix) for w in wanted):
                return False
        return True

    def object_allowed(self, action: str, key: str) -> bool:
        return self.allows(action, f"{self.bucket_arn}/{key}")

    def may_list(self, prefix: str | None = None) -> bool:
        return self.allows("s3:ListBucket", self.bucket_arn, prefix)


class GuardedStorage(Storage):
    """``inner`` as the function's role would see the bucket: a call its policy does not allow raises
    the same ``AccessDenied`` that S3Storage raises for S3's 403."""

    def __init__(self, inner: Storage, policy: S3Policy):
        self.inner, self.policy = inner, policy

    def _check(self, action: str, key: str) -> None:
        if not self.policy.object_allowed(action, key):
            raise AccessDenied(denial(action, self.policy.bucket, key))

    def _read_check(self, key: str) -> None:
        """GetObject/HeadObject as S3Storage sees them: allowed and present -> read; otherwise S3 says 403
        and S3Storage lists the key: not allowed to list -> AccessDenied, absent -> KeyError, present ->
        AccessDenied (the object exists but this role may not read it)."""
        if self.policy.object_allowed("s3:GetObject", key) and self.inner.exists(key):
            return
        self._may_list(key)
        if self.inner.exists(key):
            raise AccessDenied(denial("s3:GetObject", self.policy.bucket, key))
        raise KeyError(key)

    def _may_list(self, prefix: str) -> None:
        if not self.policy.may_list(prefix):
            raise AccessDenied(denial("s3:ListBucket", self.policy.bucket, prefix + "*"))

    def get(self, key: str, limit: int | None = None) -> bytes:
        self._read_check(key)
        return self.inner.get(key, limit)

    def put(self, key: str, data: bytes) -> None:
        self._check("s3:PutObject", key)
        self.inner.put(key, data)

    def copy(self, src: str, dst: str) -> None:
        self._read_check(src)
        self._check("s3:PutObject", dst)
        self.inner.copy(src, dst)

    def exists(self, key: str) -> bool:
        self._may_list(key)  # S3Storage lists the key itself
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self._check("s3:DeleteObject", key)
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        self._may_list(prefix)
        return self.inner.list(prefix)

    @property
    def link_expiry_s(self) -> int | None:  # type: ignore[override]
        return self.inner.link_expiry_s

    def presign(self, key: str, expires_s: int) -> str | None:
        """A presigned URL carries the signer's permission: one this role may not GET is a dead link."""
        self._check("s3:GetObject", key)
        return self.inner.presign(key, expires_s)

    def size(self, key: str) -> int:
        """HeadObject: allowed exactly where GetObject on the key is (and 404 only for a role that lists)."""
        self._read_check(key)
        return self.inner.size(key)

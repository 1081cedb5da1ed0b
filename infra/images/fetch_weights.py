"""Copy every object under an S3 prefix into a local directory; print the directory.

Used by the image entrypoint when SADTALKER_WEIGHTS_S3=s3://bucket/prefix/ is set. Given the image's
weights role (SADTALKER_WEIGHTS_ROLE, see select_weights.py), only that role's files are fetched, as the
baked-in images carry only those. Resumable: a file
whose size already matches is kept (Lambda may re-run a timed-out init in the same sandbox). Files are
written under a temporary name and renamed, so a half-downloaded checkpoint is never seen by the loader.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def fetch(uri: str, dest: Path, client=None, role: str = "") -> Path:
    if not uri.startswith("s3://"):
        raise SystemExit(f"SADTALKER_WEIGHTS_S3 must be s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if client is None:
        import boto3

        client = boto3.client("s3")
    keep: set[str] | None = None
    if role:
        # the role table lives beside this script (both are copied to /opt/sadtalker/bin/)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from select_weights import NEEDS_FILES, files_of

        keep = set(files_of(role))
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):].lstrip("/")
            if not rel or rel.endswith("/") or ".." in rel.split("/"):
                continue
            if keep is not None and rel not in keep:
                continue
            target = dest / rel
            if target.is_file() and target.stat().st_size == obj["Size"]:
                count += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            client.download_file(bucket, obj["Key"], str(tmp))
            os.replace(tmp, target)
            count += 1
    # as at build time, only roles that cannot work without weights insist on some
    if count == 0 and (not role or role in NEEDS_FILES):
        raise SystemExit(f"no weights{f' of role {role}' if role else ''} found under {uri}")
    print(f"fetched {count} weight files from {uri} into {dest}", file=sys.stderr)
    return dest


if __name__ == "__main__":
    print(fetch(sys.argv[1], Path(sys.argv[2]), role=sys.argv[3] if len(sys.argv) > 3 else ""))

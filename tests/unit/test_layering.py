"""The library's layering rules, checked on the source: AWS SDKs only in the adapters that need them."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).parents[2] / "layers" / "sadtalker"
AWS_MODULES = {"boto3", "botocore", "moto", "aws_lambda_powertools"}
# The S3 storage adapter, the local moto runtime and the AWS client are the only AWS-aware parts.
ALLOWED = {"storage.py", "client.py", "local"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_aws_imports_in_the_model_library():
    offenders = []
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB)
        if rel.parts[0] in ALLOWED:
            continue
        bad = _imports(path) & AWS_MODULES
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, offenders

"""Synthesizing the CDK app for tests, and queries on the template (imported by name: `cdk_template`).

The session fixtures in conftest.py synthesize once per test session (jsii synth takes ~20 s).

``CDK_DOCKER`` points at /bin/false during the synth, so any attempt to run Docker (bundling, image
builds) would fail the synth: the stack must synthesize without a Docker engine.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `import infra` also under a bare `pytest` (python -m pytest adds the cwd)
    sys.path.insert(0, str(REPO))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")


@dataclass
class Synth:
    stack: Any
    template: dict
    report: dict | None
    error: Exception | None
    outdir: Path
    metadata: dict


def synth(outdir: Path, extra_context: dict | None = None) -> Synth:
    import aws_cdk as cdk

    from infra.app import build_app

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context.update(extra_context or {})
    old = os.environ.get("CDK_DOCKER")
    os.environ["CDK_DOCKER"] = "/bin/false"
    try:
        app = cdk.App(outdir=str(outdir), context=context)
        app, stack = build_app(app)
        error = None
        try:
            app.synth()
        except Exception as exc:  # cdk-nag findings surface as a validation failure; the tests report them
            error = exc
    finally:
        if old is None:
            os.environ.pop("CDK_DOCKER", None)
        else:
            os.environ["CDK_DOCKER"] = old
    name = stack.stack_name
    template = json.loads((outdir / f"{name}.template.json").read_text())
    report_file = outdir / "validation-report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    meta_file = outdir / f"{name}.metadata.json"
    metadata = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    return Synth(stack=stack, template=template, report=report, error=error, outdir=outdir, metadata=metadata)


def resources(template: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def function_by_handler(template: dict) -> dict[str, str]:
    """handler string (zip Handler or image CMD) -> logical id of the Lambda function."""
    out = {}
    for lid, res in resources(template, "AWS::Lambda::Function").items():
        props = res["Properties"]
        handler = props.get("Handler") or props["ImageConfig"]["Command"][0]
        out[handler] = lid
    return out


def object_patterns(resource: Any) -> list[str]:
    """``{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/work/*"]]}`` -> ["<bucket>/work/*"]."""
    items = resource if isinstance(resource, list) else [resource]
    out = []
    for r in items:
        if isinstance(r, dict) and "Fn::Join" in r:
            parts = r["Fn::Join"][1]
            text = "".join(
                f"<{p['Fn::GetAtt'][0]}>" if isinstance(p, dict) and "Fn::GetAtt" in p
                else f"<{p['Ref']}>" if isinstance(p, dict) and "Ref" in p else str(p)
                for p in parts
            )
            out.append(text)
        elif isinstance(r, dict) and "Fn::GetAtt" in r:
            out.append(f"<{r['Fn::GetAtt'][0]}>")
        elif isinstance(r, dict) and "Ref" in r:
            out.append(f"<{r['Ref']}>")
        else:
            out.append(str(r))
    return out


def role_statements(template: dict, role_logical_id: str) -> list[dict]:
    out = []
    for res in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in res["Properties"].get("Roles", []):
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out

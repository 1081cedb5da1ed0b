"""CDK entrypoint (cdk.json runs ``.venv/bin/python -m infra.app``).

The stack is environment-agnostic (no account/region baked in): the region comes from the deploy
credentials, availability zones are ``Fn::GetAZs`` picks, so synth never performs a context lookup and
works offline. cdk-nag's AwsSolutions pack runs on every synth; an unacknowledged finding fails it.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from .config import from_context  # noqa: E402
from .stack import SadTalkerStack  # noqa: E402

DEFAULT_STACK_NAME = "SadTalker"
# Feature flags the stack depends on (also in cdk.json); set here so an app built elsewhere (tests) agrees.
FEATURE_FLAGS = {
    # Access-log delivery through a bucket policy, so both buckets can keep ACLs disabled.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(app: cdk.App | None = None, *, nag: bool = True) -> tuple[cdk.App, SadTalkerStack]:
    app = app or cdk.App()
    for flag, value in FEATURE_FLAGS.items():
        if app.node.try_get_context(flag) is None:
            app.node.set_context(flag, value)
    config = from_context(app.node.try_get_context, _flat_context(app))
    name = app.node.try_get_context("stack_name") or DEFAULT_STACK_NAME
    stack = SadTalkerStack(
        app, name, config=config,
        description="sadtalker-serverless: portrait + speech -> talking-head video (Step Functions, Lambda, Fargate)",
    )
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def _flat_context(app: cdk.App) -> dict:
    """The dotted ``sadtalker.*`` keys given with ``cdk ... -c sadtalker.x.y=value``."""
    return {k: v for k, v in app.node.get_all_context().items() if k.startswith("sadtalker.")}


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()

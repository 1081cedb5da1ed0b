"""cdk-nag 3 acknowledgments: CDK's own ``Validations.of(scope).acknowledge(Acknowledgment(...))``.

Every acknowledgment carries its reason; the id is ``<plugin>::<rule>[<finding>]``, e.g.
``AwsSolutions::AwsSolutions-IAM5[Resource::*]``.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

PLUGIN = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PLUGIN}::{rule}", reason=reason))


def acknowledge_other(scope: IConstruct, full_id: str, reason: str) -> None:
    """Acknowledge a finding of another validation plugin by its full id (e.g. ``CloudFormation-Validate::E1029``)."""
    if not reason.strip():
        raise ValueError(f"acknowledging {full_id} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=full_id, reason=reason))

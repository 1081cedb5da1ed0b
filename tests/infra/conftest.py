"""The infra tests share the session's one CDK synth (tests/conftest.py): ``synthesized`` and ``template``."""

from __future__ import annotations

import pytest

from cdk_template import Synth


@pytest.fixture(scope="session")
def cdk_template(synthesized: Synth):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized.template)

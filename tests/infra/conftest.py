"""One CDK synth per test session (jsii synth takes ~20 s): the real app, cdk.json's context, cdk-nag on."""

from __future__ import annotations

import pytest

from cdk_template import Synth, synth


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def template(synthesized: Synth) -> dict:
    return synthesized.template


@pytest.fixture(scope="session")
def cdk_template(synthesized: Synth):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized.template)

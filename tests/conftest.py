"""Shared test fixtures: the parity kit's golden files and synthetic checkpoints in official layouts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cdk_template import Synth, synth
from reference_data import reduced_dir, synthetic_dir

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # functions/ and infra/ are top-level packages of the checkout, not installed
    sys.path.insert(0, str(ROOT))
# Handlers run in-process in the pipeline tests: quiet Powertools, no metrics/trace flushing.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def weights_256() -> Path:
    """SadTalker synthetic weights, safetensors_256 layout (+ mapping files)."""
    return synthetic_dir("safetensors_256")


@pytest.fixture(scope="session")
def weights_pth() -> Path:
    """SadTalker synthetic weights, old v0.0.2 .pth layout."""
    return synthetic_dir("v0.0.2_pth")


@pytest.fixture(scope="session", params=["safetensors_256", "v0.0.2_pth"])
def weights_any_layout(request) -> Path:
    """Both official SadTalker layouts, for parity tests that must pass with either."""
    return synthetic_dir(request.param)


@pytest.fixture(scope="session")
def weights_enhancers() -> Path:
    """GFPGANv1.4.pth + RealESRGAN_x2plus.pth synthetic files."""
    return synthetic_dir(None)


@pytest.fixture(scope="session")
def reduced_weights() -> Path:
    """REDUCED-profile synthetic weights (fast pipeline and reliability runs)."""
    return reduced_dir()


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> Synth:
    """One CDK synth per test session (jsii synth takes ~20 s): the real app, cdk.json's context, cdk-nag on.
    The infra tests check it; the pipeline tests run jobs with its functions' environments and policies."""
    return synth(tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def template(synthesized: Synth) -> dict:
    return synthesized.template

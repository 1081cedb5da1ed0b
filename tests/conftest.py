"""Shared test fixtures: the parity kit's golden files and synthetic checkpoints in official layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_data import synthetic_dir


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

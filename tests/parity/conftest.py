"""Fixtures of the parity tests only."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_data import synthetic_dir


@pytest.fixture(scope="session")
def weights_512() -> Path:
    """Synthetic weights in the safetensors_512 layout only (+ mapping files): no 256 file to fall back on,
    so every network of a 512 test must really be loaded for size 512."""
    return synthetic_dir("safetensors_512")

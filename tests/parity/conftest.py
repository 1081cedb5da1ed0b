"""Fixtures of the parity tests only."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from reference_data import load_golden, synthetic_dir


@pytest.fixture(scope="session")
def weights_512() -> Path:
    """Synthetic weights in the safetensors_512 layout only (+ mapping files): no 256 file to fall back on,
    so every network of a 512 test must really be loaded for size 512."""
    return synthetic_dir("safetensors_512")


class GoldenFile(dict):
    """A golden file's arrays, with its file name (caches of results computed from a golden key on it)."""

    def __init__(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.name = name


@functools.cache
def _read(name: str) -> GoldenFile:
    return GoldenFile(name, load_golden("sadtalker", name))  # a missing file fails every test using it (no cache)


@pytest.fixture
def golden(request) -> GoldenFile:
    """The golden file the test is (indirectly) parametrised with, read once per session."""
    return _read(request.param)


@pytest.fixture
def weights(request) -> Path:
    """The weight store the test is (indirectly) parametrised with, by fixture name (weights_256, weights_pth,
    weights_512): each golden is checked with the stores made in its own release layouts."""
    return request.getfixturevalue(request.param)

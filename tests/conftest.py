"""Shared test fixtures: the parity kit's golden files and synthetic checkpoints in official layouts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def reference_dir(kit: str) -> Path:
    """``$SADTALKER_REFERENCE_DIR/<kit>`` when set, else the copies in tests/fixtures/reference/<kit>."""
    root = os.environ.get("SADTALKER_REFERENCE_DIR")
    return (Path(root) if root else FIXTURES / "reference") / kit


def load_golden(kit: str, name: str) -> dict[str, np.ndarray]:
    """A golden file as a dict; a missing golden fails the test (never skips)."""
    path = reference_dir(kit) / name
    if not path.exists():
        pytest.fail(f"golden file {path} is missing")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _cache_root() -> Path:
    return Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")


def synthetic_dir(layout: str, enhancers: bool = False) -> Path:
    """Synthetic weights in ``layout``, written once per machine (deterministic content, atomic rename)."""
    from sadtalker.weights import write_synthetic

    name = f"{layout}{'+enh' if enhancers else ''}-v1"
    final = _cache_root() / name
    if (final / "SYNTHETIC").exists():
        return final
    tmp = final.with_name(name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic(tmp, layouts=(layout,), enhancers=enhancers)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


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
    from sadtalker.weights import write_synthetic

    final = _cache_root() / "enhancers-v1"
    if not (final / "SYNTHETIC").exists():
        tmp = final.with_name(f"enhancers-v1.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_synthetic(tmp, layouts=(), enhancers=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return final

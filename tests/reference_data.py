"""The parity kit's golden files and synthetic checkpoints, for tests (imported by name: `reference_data`)."""

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


def cache_root() -> Path:
    return Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")


def synthetic_dir(layout: str | None, enhancers: bool = False) -> Path:
    """Synthetic weights in ``layout`` (None: none) [+ the enhancer files], written once per machine
    (deterministic content, atomic rename)."""
    from sadtalker.weights import write_synthetic

    name = f"{layout or 'enhancers'}{'+enh' if enhancers and layout else ''}-v1"
    final = cache_root() / name
    if (final / "SYNTHETIC").exists():
        return final
    tmp = final.with_name(name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic(tmp, layouts=(layout,) if layout else (), enhancers=enhancers or not layout)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def reduced_dir() -> Path:
    """Synthetic REDUCED-profile weights (renderer and enhancers at reduced widths, face/audio nets full):
    the fast configuration of the pipeline and reliability tests, written once per machine."""
    from sadtalker.enhance.reduced import write_reduced_enhancers
    from sadtalker.render.reduced import write_reduced_weights

    final = cache_root() / "reduced-pipeline-v1"
    if (final / "PROFILE").exists():
        return final
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_reduced_weights(tmp)
    write_reduced_enhancers(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final

"""Pipeline fixtures: reduced-profile synthetic weights, stage doubles for stages not landed yet, and
a LocalRuntime running the real ASL on moto."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(Path(__file__).parent))
if str(ROOT) not in sys.path:  # functions/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


def _cache_root() -> Path:
    return Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")


@pytest.fixture(scope="session")
def reduced_weights() -> Path:
    """Synthetic REDUCED-profile weights (renderer's write_reduced_weights [+ enhancers' reduced files])."""
    from sadtalker.render.reduced import write_reduced_weights

    final = _cache_root() / "reduced-pipeline-v1"
    if (final / "PROFILE").exists():
        return final
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_reduced_weights(tmp)
    try:
        from sadtalker.enhance.reduced import write_reduced_weights as write_enhancers
    except ImportError:
        write_enhancers = None
    if write_enhancers is not None:
        write_enhancers(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


@pytest.fixture
def doubles(monkeypatch) -> list[str]:
    from doubles import install_missing

    return install_missing(monkeypatch)


@pytest.fixture
def example_inputs() -> tuple[Path, Path]:
    return EXAMPLES / "portrait.png", EXAMPLES / "speech.wav"

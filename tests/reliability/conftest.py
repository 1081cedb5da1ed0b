"""Reliability fixtures (helpers live in rel_helpers.py: a module named "conftest" is ambiguous across folders).

Every job runs through the real state machine on the local runtime (moto). moto's world is global per
process, so each test module opens ONE LocalRuntime (module-scoped fixture) and runs all its cases in it.

What a job may leave in ``work/<job>/`` (the bucket's lifecycle rule expires ``work/`` after 7 days):
the intermediates of the stages that completed - ``original.png``, ``source.png``, ``face.npz``,
``audio.npz``, ``coeffs.npz``, ``ref_*.npz``, ``chunks/*.npz``, ``timings/*.json`` and the Fargate
task's ``finalize-error.json`` - and nothing else (never ``video.partial.mp4``). A job refused by
ValidateJob leaves nothing there at all. Outside ``work/<job>/`` a failed job writes only
``outputs/<job>/error.json``; a successful one ``outputs/<job>/{video.mp4, preview.jpg, result.json}``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(ROOT) not in sys.path:  # functions/ is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))  # rel_helpers
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

def cache_root() -> Path:
    return Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")


@pytest.fixture(scope="session")
def reduced_weights() -> Path:
    """The same REDUCED-profile synthetic weights tests/pipeline uses (same cache directory)."""
    final = cache_root() / "reduced-pipeline-v1"
    if (final / "PROFILE").exists():
        return final
    from sadtalker.enhance.reduced import write_reduced_enhancers
    from sadtalker.render.reduced import write_reduced_weights

    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_reduced_weights(tmp)
    write_reduced_enhancers(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final



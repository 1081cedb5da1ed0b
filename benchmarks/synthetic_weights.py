"""Synthetic full-size weights for the benchmarks, in the cache the tests use (written once per machine)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def synthetic_weights(explicit: str | None, layout: str | None = "safetensors_256") -> Path:
    """``explicit`` (or $SADTALKER_WEIGHTS), else synthetic weights in ``layout`` (None: the enhancer files)."""
    if explicit or os.environ.get("SADTALKER_WEIGHTS"):
        return Path(explicit or os.environ["SADTALKER_WEIGHTS"])
    from sadtalker.weights import write_synthetic

    cache = Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")
    final = cache / f"{layout or 'enhancers'}-v1"
    if not (final / "SYNTHETIC").exists():
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_synthetic(tmp, layouts=(layout,) if layout else (), enhancers=layout is None)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return final

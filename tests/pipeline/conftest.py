"""Pipeline fixtures: reduced-profile synthetic weights (renderer + enhancers), example inputs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pipeline_media import EXAMPLES
from reference_data import cache_root

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # functions/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def reduced_weights() -> Path:
    """Synthetic REDUCED-profile weights (renderer's write_reduced_weights [+ enhancers' reduced files])."""
    from sadtalker.render.reduced import write_reduced_weights

    final = cache_root() / "reduced-pipeline-v1"
    if (final / "PROFILE").exists():
        return final
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_reduced_weights(tmp)
    from sadtalker.enhance.reduced import write_reduced_enhancers

    write_reduced_enhancers(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """The bundled example, a 0.6 s cut of its speech, and a face-less gradient image."""
    import wave

    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    with wave.open(str(EXAMPLES / "speech.wav"), "rb") as src:
        params = src.getparams()
        pcm = src.readframes(int(params.framerate * 0.6))
    with wave.open(str(d / "short.wav"), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(pcm)
    ramp = np.linspace(0, 255, 320, dtype=np.float32)
    grad = np.stack([np.tile(ramp, (320, 1)), np.tile(ramp[:, None], (1, 320)), np.full((320, 320), 128.0)], -1)
    Image.fromarray(grad.astype(np.uint8)).save(d / "gradient.png")
    return {"portrait": EXAMPLES / "portrait.png", "speech": EXAMPLES / "speech.wav",
            "short": d / "short.wav", "gradient": d / "gradient.png"}

"""Pipeline fixtures: example inputs (the reduced-profile weights come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_media import EXAMPLES


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

"""Build-time warm-up of numba's on-disk cache (run with NUMBA_CACHE_DIR pointing at the seed dir).

Our own audio code computes the STFT with numpy and needs no numba, but librosa (installed with the ml
extra) decorates functions with ``@jit(cache=True)`` and compiles them on first call - seconds of cold
start. Calling them once here stores the machine code; the entrypoint copies it into /tmp at start.
face-alignment's two jitted helpers are not cache-enabled, so they always compile on first use.
"""

from __future__ import annotations

import numpy as np


def main() -> None:
    import librosa

    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=800, hop_length=200, n_mels=80)
    librosa.util.localmax(mel)
    librosa.util.localmin(mel)
    librosa.onset.onset_strength(y=wave, sr=16000)
    librosa.feature.zero_crossing_rate(wave)
    librosa.stft(wave, n_fft=800, hop_length=200)
    print("numba cache warmed")


if __name__ == "__main__":
    main()

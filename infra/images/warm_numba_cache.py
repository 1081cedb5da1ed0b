"""Build-time warm-up of numba's on-disk cache (run with NUMBA_CACHE_DIR pointing at the seed dir).

Our own audio code computes the STFT with numpy and needs no numba, but librosa (installed with the ml
extra) decorates functions with ``@jit(cache=True)`` and compiles them on first call - seconds of cold
start. Calling them once here stores the machine code; the entrypoint copies it into /tmp at start.
face-alignment's two jitted helpers are not cache-enabled, so they always compile on first use.

numba keys each cached function by the host CPU's name and features. The image is built on one machine
and runs on whatever CPUs Lambda and Fargate have, so a cache keyed by the build machine's CPU would miss
on every cold start. The Dockerfile sets ``NUMBA_CPU_NAME=generic`` (and numba then uses no host-specific
features) for this warm-up and for the runtime alike; this script refuses to seed anything else, and
fails when nothing was cached (tests/infra/test_numba_cache.py shows the key is then host-independent).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    if os.environ.get("NUMBA_CPU_NAME") != "generic" or os.environ.get("NUMBA_CPU_FEATURES", ""):
        print("warm_numba_cache: run with NUMBA_CPU_NAME=generic (and no NUMBA_CPU_FEATURES), else the seeded "
              "cache only matches the build machine's CPU", file=sys.stderr)
        return 2
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if not cache_dir:
        print("warm_numba_cache: NUMBA_CACHE_DIR must name the seed directory", file=sys.stderr)
        return 2
    import librosa

    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=800, hop_length=200, n_mels=80)
    librosa.util.localmax(mel)
    librosa.util.localmin(mel)
    librosa.onset.onset_strength(y=wave, sr=16000)
    librosa.feature.zero_crossing_rate(wave)
    librosa.stft(wave, n_fft=800, hop_length=200)
    indexes = list(Path(cache_dir).rglob("*.nbi"))
    if not indexes:
        print(f"warm_numba_cache: nothing was cached in {cache_dir}", file=sys.stderr)
        return 1
    print(f"numba cache warmed: {len(indexes)} functions (generic CPU) in {cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

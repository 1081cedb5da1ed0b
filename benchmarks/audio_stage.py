"""Benchmark (not a test): CPU and wall time of the AudioFeatures and Audio2Coeff stages.

    .venv/bin/python benchmarks/audio_stage.py [--weights DIR] [--threads 2]

Runs the kit's 8 s clip and a 60 s clip (the 8 s clip repeated) through the real stage functions on a
LocalStorage in a temporary directory. Weights: --weights, else $SADTALKER_WEIGHTS, else the synthetic
test weights (written on first use); synthetic weights cost exactly what the real ones cost.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from synthetic_weights import synthetic_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))

CLIP_8S = ROOT / "tests" / "fixtures" / "reference" / "sadtalker" / "speech_8s.wav"


def _wav_bytes(pcm: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def _cpu() -> float:
    """This process's CPU time plus that of finished children (the ffmpeg decoder)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Clock:
    def __enter__(self):
        self.cpu, self.wall = _cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = _cpu() - self.cpu, time.perf_counter() - self.wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from sadtalker.coefficients import load_audio_models
    from sadtalker.jobs import JobKeys
    from sadtalker.params import JobParams
    from sadtalker.stages.audio2coeff import audio2coeff
    from sadtalker.stages.audio_features import audio_features
    from sadtalker.storage import LocalStorage
    from sadtalker.weights import ModelStore

    with wave.open(str(CLIP_8S)) as w:
        pcm8 = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    clips = {"8s": _wav_bytes(pcm8), "60s": _wav_bytes(np.resize(pcm8, 60 * 16000))}
    models = ModelStore(synthetic_weights(args.weights))
    params = JobParams.load({"seed": 0})
    print(f"torch threads {torch.get_num_threads()}, weights {models.root} (cpu = user+sys incl. ffmpeg)")

    with Clock() as load:
        load_audio_models(models, params.size)
    print(f"model load (cold, both nets): cpu {load.cpu:.2f} s, wall {load.wall:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(tmp)
        for name, data in clips.items():
            job = JobKeys(f"bench-{name}")
            key = f"inbox/{job.job_id}/speech.wav"
            storage.put(key, data)
            with Clock() as feat:
                info = audio_features(storage, job, key, params)
            storage.put_npz(job.face, {"coeff_3dmm": np.zeros((1, 73), np.float32)})
            with Clock() as coeff:
                out = audio2coeff(storage, job, params, models)
            with Clock() as cached:
                again = audio2coeff(storage, job, params, models)
            assert not out["cached"] and again["cached"]
            print(
                f"{name}: {info['num_frames']} frames | audio_features cpu {feat.cpu:.2f} s wall {feat.wall:.2f} s "
                f"(decode wall {info['timings']['decode_s']:.2f} s) | audio2coeff cpu {coeff.cpu:.2f} s "
                f"wall {coeff.wall:.2f} s | cache hit wall {cached.wall:.3f} s"
            )


if __name__ == "__main__":
    main()

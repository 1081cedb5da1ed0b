"""Benchmark (not a test): what of a heavy function's cold start can be measured without AWS.

    .venv/bin/python benchmarks/cold_start.py [--out benchmarks/results]

Per image role (infra/images/select_weights.py):
* content size: the role's weight files (full-size synthetic weights, written by the same code as
  ``sadtalker weights synthetic DIR``: same tensors, same shapes, so the official files' sizes within a few
  KB) plus the installed size of every package in requirements.lock, summed from this virtualenv's
  installed files (Python 3.11 here, 3.12 in the image: a fair estimate, not the image's byte count);
* per stage, in a FRESH process each (as a cold start is): seconds to import the stage (torch and the
  library) and the stage's own ``model_load_s`` (network build + strict checkpoint load), wall and CPU.
  face-alignment's two files are not written by ``weights synthetic``, so Preprocess measures the dlib
  landmark backend (what ``landmarks=auto`` picks without them).

What it cannot measure: Lambda's own cold start (image pull from ECR / its block cache, sandbox start,
the 10 s init budget); docs/aws.md says so next to the table. Writes ``cold_start.json`` into --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from importlib import metadata
from pathlib import Path

from synthetic_weights import synthetic_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))
EXAMPLES = ROOT / "examples"


def _select_weights():
    spec = importlib.util.spec_from_file_location("select_weights", ROOT / "infra" / "images" / "select_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def packages_bytes() -> tuple[int, int]:
    """(bytes, packages) of the lock's packages as installed here (files only, no bytecode caches)."""
    total = count = 0
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("==")[0]
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        count += 1
        for f in dist.files or []:
            if "__pycache__" in f.parts:
                continue
            p = Path(dist.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
    return total, count


# One stage per fresh interpreter: (import seconds, the stage's timings) on a prepared job.
PROBE = r'''
import json, os, sys, time
from pathlib import Path
t0, c0 = time.perf_counter(), os.times()
sys.path.insert(0, sys.argv[4])
stage, work, weights = sys.argv[1], sys.argv[2], sys.argv[3]
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.storage import LocalStorage
from sadtalker.weights import ModelStore
import torch  # noqa: F401  (part of every heavy function's import)
if stage == "preprocess":
    from sadtalker.stages.preprocess import preprocess as run
elif stage == "audio2coeff":
    from sadtalker.stages.audio2coeff import audio2coeff as run
elif stage == "render_chunk":
    from sadtalker.stages.render_chunk import render_chunk as run
else:
    from sadtalker.enhance.loaders import load_gfpgan, load_rrdbnet
t1, c1 = time.perf_counter(), os.times()
storage, job, models = LocalStorage(work), JobKeys("cold"), ModelStore(Path(weights))
params = JobParams(size=int(sys.argv[5]))
if stage == "preprocess":
    out = run(storage, job, "inbox/cold/face.png", params, models)
elif stage == "audio2coeff":
    storage.delete(job.coeffs)  # never the cached result
    out = run(storage, job, params, models)
elif stage == "render_chunk":
    out = run(storage, job, 0, 1, params, models)
else:
    t, c = time.perf_counter(), os.times()
    load_gfpgan(models), load_rrdbnet(models)
    c2 = os.times()
    out = {"timings": {"model_load_s": round(time.perf_counter() - t, 3),
                       "model_load_cpu_s": round(c2.user + c2.system - c.user - c.system, 3)}}
print(json.dumps({"import_s": round(t1 - t0, 3),
                  "import_cpu_s": round(c1.user + c1.system - c0.user - c0.system, 3),
                  "timings": out.get("timings", {})}))
'''


def _probe(stage: str, work: Path, weights: Path, size: int = 256) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, stage, str(work), str(weights), str(ROOT / "layers"), str(size)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{stage}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _prepare(work: Path, weights: Path) -> None:
    """A 1 s job up to its coefficients (the inputs the probed stages read)."""
    from sadtalker.jobs import JobKeys, JobRecord
    from sadtalker.params import JobParams
    from sadtalker.stages.audio2coeff import audio2coeff
    from sadtalker.stages.audio_features import audio_features
    from sadtalker.stages.preprocess import preprocess
    from sadtalker.storage import LocalStorage
    from sadtalker.weights import ModelStore

    storage, job, params = LocalStorage(work), JobKeys("cold"), JobParams()
    storage.put("inbox/cold/face.png", (EXAMPLES / "portrait.png").read_bytes())
    with wave.open(str(EXAMPLES / "speech.wav"), "rb") as src, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        with wave.open(str(path), "wb") as out:
            out.setparams(src.getparams())
            out.writeframes(src.readframes(src.getframerate()))
        storage.put("inbox/cold/speech.wav", path.read_bytes())
    storage.put(job.record, JobRecord("cold", "b", "inbox/cold/face.png", "inbox/cold/speech.wav", params, 1).to_json())
    preprocess(storage, job, "inbox/cold/face.png", params, ModelStore(weights))
    audio_features(storage, job, "inbox/cold/speech.wav", params)
    audio2coeff(storage, job, params, ModelStore(weights))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    sw = _select_weights()
    dirs = [synthetic_weights(None, "safetensors_256"), synthetic_weights(None, "safetensors_512"),
            synthetic_weights(None, None)]
    sizes = {p.name: p.stat().st_size for d in dirs for p in d.iterdir() if p.is_file()}
    pkg_bytes, pkg_count = packages_bytes()
    roles = {}
    for role, files in sw.ROLES.items():
        # the official bundles, not the old .pth set (an alternative to the 256 bundle, never both)
        present = {f: sizes[f] for f in files if f in sizes}
        roles[role] = {"weights_bytes": sum(present.values()), "files": present,
                       "not_measured": [f for f in files if f not in sizes and f in sw.FACE_ALIGNMENT],
                       "total_bytes": sum(present.values()) + pkg_bytes}
    stages = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _prepare(work, dirs[0])
        for stage, weights, size in (("preprocess", dirs[0], 256), ("audio2coeff", dirs[0], 256),
                                     ("render_chunk", dirs[0], 256), ("enhance", dirs[2], 256)):
            t = time.perf_counter()
            stages[stage] = _probe(stage, work, weights, size)
            stages[stage]["process_s"] = round(time.perf_counter() - t, 3)
            print(stage, stages[stage], flush=True)
    result = {"packages_bytes": pkg_bytes, "packages": pkg_count, "roles": roles, "stages": stages,
              "load_average": os.getloadavg(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_start.json").write_text(json.dumps(result, indent=1) + "\n")
    for role, r in roles.items():
        print(f"{role:12s} weights {r['weights_bytes'] / 1e6:8.0f} MB  + packages {pkg_bytes / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

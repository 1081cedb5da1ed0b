"""Benchmark of the face enhancer (not a test): seconds per frame, full-size synthetic weights, JSON out.

Measures, through ``enhance_frames`` (the code the pipeline runs):
- ``gfpgan``: GFPGAN v1.4 restore + paste-back, Lanczos background, on ``--face-size`` frames;
- ``realesrgan``: the same plus the Real-ESRGAN x2 background on ``--bg-size`` frames whose face region
  changes every frame (as in full/extfull), with changed-tile reuse (tile 200) and without it
  (SadTalker's tile 400, every tile recomputed);
each at the worker counts of ``--workers`` / ``--bg-workers``. ``wall_s_per_frame`` includes starting the
workers and loading the networks; ``compute_s_per_frame`` is the per-frame work measured in the workers.

    .venv/bin/python benchmarks/enhance.py                      # short default run
    .venv/bin/python benchmarks/enhance.py --frames 4 --bg-size 512 --bg-workers 1,2 -o out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def _frames(size: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """n frames of the kit's astronaut at size x size, the mouth region moving; plus its 68 landmarks."""
    from PIL import Image

    ref = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "sadtalker"
    img = np.asarray(Image.open(ref / "astronaut.png").convert("RGB"))
    lm = np.load(ref / "astronaut_lm68.npy").astype(np.float64) * (size / img.shape[1])
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    y0, y1 = int(lm[48:68, 1].min()) - 4, int(lm[48:68, 1].max()) + 4
    x0, x1 = int(lm[48:68, 0].min()) - 4, int(lm[48:68, 0].max()) + 4
    out = []
    for i in range(n):
        f = img.copy()
        f[y0:y1, x0:x1] = np.roll(img[y0:y1, x0:x1], i + 1, axis=0)
        out.append(f)
    return out, lm


def _run(models, params, frames, lm, workers: int, tile: int | None, reuse: bool = True) -> dict:
    from sadtalker.enhance import EnhanceStats, enhance_frames

    stats = EnhanceStats()
    t = time.perf_counter()
    n = sum(1 for _ in enhance_frames(iter(frames), params=params, models=models, seed=0, workers=workers,
                                      face_hint=lm, stats=stats, tile=tile, reuse=reuse))
    wall = time.perf_counter() - t
    return {
        "workers": workers,
        "frames": n,
        "frame_size": list(frames[0].shape[:2]),
        "tile": tile,
        "wall_s_per_frame": round(wall / n, 3),
        "compute_s_per_frame": round((stats.seconds_face + stats.seconds_background) / n, 3),
        "face_s_per_frame": round(stats.seconds_face / n, 3),
        "background_s_per_frame": round(stats.seconds_background / n, 3),
        "tiles_computed": stats.tiles_computed,
        "tiles_reused": stats.tiles_reused,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="directory with GFPGANv1.4.pth and RealESRGAN_x2plus.pth (default: synthetic, "
                    "written once to ~/.cache/sadtalker/test-weights/enhancers-v1)")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--face-size", type=int, default=256, help="frame size of the GFPGAN runs")
    ap.add_argument("--bg-size", type=int, default=384, help="frame size of the Real-ESRGAN runs")
    ap.add_argument("--workers", default="1,2", help="worker counts for the GFPGAN runs")
    ap.add_argument("--bg-workers", default="1", help="worker counts for the Real-ESRGAN runs")
    ap.add_argument("--skip-background", action="store_true")
    ap.add_argument("-o", "--output", help="also write the JSON here")
    args = ap.parse_args(argv)

    import torch

    from sadtalker.enhance.stream import available_cores
    from sadtalker.enhance.upsampler import REUSE_TILE, SADTALKER_TILE
    from sadtalker.params import JobParams
    from sadtalker.weights import ModelStore, write_synthetic

    if args.weights:
        root = Path(args.weights)
    else:
        root = Path.home() / ".cache" / "sadtalker" / "test-weights" / "enhancers-v1"
        if not (root / "SYNTHETIC").exists():
            write_synthetic(root, layouts=(), enhancers=True)
    models = ModelStore(root)
    torch.set_num_threads(min(2, available_cores()))
    result: dict = {
        "machine": {"cores": available_cores(), "python": platform.python_version(), "torch": torch.__version__},
        "weights": {"dir": str(root), "synthetic": models.synthetic, "profile": models.profile},
        "gfpgan": [],
        "realesrgan": [],
    }
    frames, lm = _frames(args.face_size, args.frames)
    gfpgan_only = JobParams.load({"enhancer": "gfpgan", "background_enhancer": ""})
    for w in (int(v) for v in args.workers.split(",")):
        result["gfpgan"].append(_run(models, gfpgan_only, frames, lm, w, None))
        print(json.dumps(result["gfpgan"][-1]), file=sys.stderr)
    if not args.skip_background:
        frames, lm = _frames(args.bg_size, args.frames)
        full = JobParams.load({"enhancer": "gfpgan", "background_enhancer": "realesrgan", "preprocess": "full"})
        for w in (int(v) for v in args.bg_workers.split(",")):
            for tile, reuse in ((REUSE_TILE, True), (REUSE_TILE, False), (SADTALKER_TILE, False)):
                row = _run(models, full, frames, lm, w, tile, reuse)
                row["reuse"] = reuse
                result["realesrgan"].append(row)
                print(json.dumps(row), file=sys.stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()

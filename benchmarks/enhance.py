"""Benchmark of the face enhancer (not a test): seconds per frame, full-size synthetic weights, JSON out.

Measures, through ``enhance_frames`` (the code the pipeline runs):
- ``gfpgan``: GFPGAN v1.4 restore + paste-back, Lanczos background, on ``--face-size`` frames;
- ``realesrgan``: the same plus the Real-ESRGAN x2 background on ``--bg-size`` frames whose face region
  changes every frame (as in full/extfull), with changed-tile reuse (tile 200) and without it
  (SadTalker's tile 400, every tile recomputed);
each at the worker counts of ``--workers`` / ``--bg-workers``. ``wall_s_per_frame`` includes starting the
workers and loading the networks; ``compute_s_per_frame`` is the per-frame work measured in the workers;
``steady_s_per_frame`` is the median interval between output frames after the first (what a long clip
costs per frame). Timings on a shared machine are noisy (the kit saw 7x between identical runs); the
``tile_work_full_mode`` table is exact.

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

from synthetic_weights import synthetic_weights


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
    stamps: list[float] = []
    n = sum(1 for _ in enhance_frames(iter(frames), params=params, models=models, seed=0, workers=workers,
                                      face_hint=lm, stats=stats, tile=tile, reuse=reuse,
                                      progress=lambda done: stamps.append(time.perf_counter())))
    wall = time.perf_counter() - t
    # Steady state: intervals between yielded frames after the first (no start-up, no first-frame tiles).
    steady = float(np.median(np.diff(stamps))) if len(stamps) > 1 else None
    return {
        "steady_s_per_frame": None if steady is None else round(steady, 3),
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


def _full_mode_frames(photo_size: int, n: int) -> list[np.ndarray]:
    """Composed full-mode frames: the photo with a 'talking' 256 px render cloned back (real PasteBack)."""
    from PIL import Image

    from sadtalker.face.crop import crop_face, crop_geometry
    from sadtalker.params import JobParams
    from sadtalker.paste_back import PasteBack

    ref = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "sadtalker"
    photo = np.asarray(Image.open(ref / "astronaut.png").convert("RGB"))
    lm = np.load(ref / "astronaut_lm68.npy") * (photo_size / photo.shape[1])
    photo = cv2.resize(photo, (photo_size, photo_size), interpolation=cv2.INTER_LANCZOS4)
    geom = crop_geometry(lm, (photo_size, photo_size), "crop")
    render = crop_face(photo, geom, 256)
    paste = PasteBack({**geom.as_arrays(), "lm68": lm}, photo, JobParams.load({"preprocess": "full"}))
    frames = []
    for i in range(n):
        r = render.copy()
        r[150:220, 80:180] = np.roll(render[150:220, 80:180], i + 1, axis=0)  # the mouth moves
        frames.append(paste(r))
    return frames


def tile_work(photo_sizes=(512, 1024), tiles=(128, 200, 256, 400), n: int = 4) -> list[dict]:
    """Padded input pixels the network runs per full-mode frame (steady state, after the first frame),
    per tile size with reuse, relative to recomputing every tile of 400. Deterministic: which tiles are
    reused depends only on the frames, so a cheap stand-in network is enough to count them."""
    import torch.nn.functional as F

    from sadtalker.enhance.upsampler import TiledUpsampler

    def stand_in(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    rows = []
    for size in photo_sizes:
        frames = _full_mode_frames(size, n)
        base = None
        for tile in sorted(tiles, reverse=True):
            for reuse in ((False, True) if tile == max(tiles) else (True,)):
                up = TiledUpsampler(stand_in, tile=tile, reuse=reuse)
                up.enhance(np.ascontiguousarray(frames[0][:, :, ::-1]))
                first, first_tiles = up.stats.computed_px, up.stats.computed
                for f in frames[1:]:
                    up.enhance(np.ascontiguousarray(f[:, :, ::-1]))
                px = (up.stats.computed_px - first) / (n - 1)
                base = px if base is None else base
                rows.append({"photo": size, "tile": tile, "reuse": reuse, "padded_px_per_frame": int(px),
                             "relative_work": round(px / base, 3),
                             "tiles_per_frame": round((up.stats.computed - first_tiles) / (n - 1), 2)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="directory with GFPGANv1.4.pth and RealESRGAN_x2plus.pth (default: synthetic, "
                    "written once to ~/.cache/sadtalker/test-weights/enhancers-v1)")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--face-size", type=int, default=256, help="frame size of the GFPGAN runs")
    ap.add_argument("--bg-size", type=int, default=384, help="frame size of the Real-ESRGAN runs")
    ap.add_argument("--workers", default="1,2", help="worker counts for the GFPGAN runs")
    ap.add_argument("--bg-workers", default="1", help="worker counts for the Real-ESRGAN runs")
    ap.add_argument("--skip-background", action="store_true")
    ap.add_argument("--work-only", action="store_true", help="only the deterministic tile-work table")
    ap.add_argument("-o", "--output", help="also write the JSON here")
    args = ap.parse_args(argv)

    import torch

    from sadtalker.enhance.upsampler import REUSE_TILE, SADTALKER_TILE
    from sadtalker.machine import available_cores
    from sadtalker.params import JobParams
    from sadtalker.weights import ModelStore

    root = synthetic_weights(args.weights, layout=None)
    models = ModelStore(root)
    torch.set_num_threads(min(2, available_cores()))
    result: dict = {
        "machine": {"cores": available_cores(), "python": platform.python_version(), "torch": torch.__version__},
        "weights": {"dir": str(root), "synthetic": models.synthetic, "profile": models.profile},
        "gfpgan": [],
        "realesrgan": [],
    }
    result["tile_work_full_mode"] = tile_work()
    for row in result["tile_work_full_mode"]:
        print(json.dumps(row), file=sys.stderr)
    if args.work_only:
        print(json.dumps(result, indent=2))
        return result
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

"""Benchmark (not a test): seconds per rendered frame of the face renderer, and where the time goes.

    .venv/bin/python benchmarks/render.py [--weights DIR] [--frames 4] [--batch-sizes 1 2 4] [--threads 1 2]
                                          [--size 256] [--out benchmarks/results]

Full-size networks with synthetic weights (same cost as the real ones): --weights, else $SADTALKER_WEIGHTS,
else the synthetic test weights (written on first use). For every (torch threads, batch size) setting it
renders ``--frames`` frames of the kit's 3 s clip through ``FaceRenderer.render_range`` (the code the
render_chunk stage runs) and reports wall seconds per frame, plus the share of the per-frame time spent in
MappingNet, the dense-motion network, the SPADE decoder and the rest of the generator (warp, third/fourth
blocks, keypoint maths). The per-job source work (keypoint detector, source encoder) is timed separately.
Writes ``render.json`` and ``render.png`` into --out. The figures are only meaningful on an otherwise idle
machine: the JSON records the load average (on a shared 2-core machine, 2 threads can be slower than 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from synthetic_weights import synthetic_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))
REF = ROOT / "tests" / "fixtures" / "reference" / "sadtalker"


class ModuleTimer:
    """Wall time spent inside selected modules (forward hooks; modules must not nest)."""

    def __init__(self, modules: dict) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._start: dict[str, float] = {}
        self.handles = []
        for name, module in modules.items():
            self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            self.handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            self._start[name] = time.perf_counter()

        return hook

    def _post(self, name):
        def hook(module, args, out):
            self.totals[name] += time.perf_counter() - self._start.pop(name)

        return hook

    def reset(self) -> None:
        self.totals.clear()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights")
    ap.add_argument("--frames", type=int, default=4, help="frames rendered per setting")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, default=256, choices=[256, 512])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import torch

    from sadtalker.params import JobParams
    from sadtalker.render.animate import build_renderer, source_image_float
    from sadtalker.render.semantics import prepare_motion
    from sadtalker.weights import ModelStore

    models = ModelStore(synthetic_weights(args.weights))
    load_at_start = os.getloadavg()  # other processes on the machine change the figures a lot
    t0 = time.perf_counter()
    renderer = build_renderer(models, args.size, full_mode=False)
    load_s = time.perf_counter() - t0

    coeffs = np.load(REF / "golden_audio2pose.npz")["coeffs_pred"]
    source_3dmm = np.load(REF / "golden_face3d.npz")["coeff_3dmm"]
    crop = np.load(REF / "golden_crop.npz")["crop_256"]
    if args.size != crop.shape[0]:
        import cv2

        crop = cv2.resize(crop, (args.size, args.size))
    inputs = prepare_motion(coeffs, source_3dmm, JobParams.load(still=False, size=args.size))
    source = source_image_float(crop)
    gen = renderer.generator
    timer = ModuleTimer(
        {"mapping": renderer.mapping, "dense_motion": gen.dense_motion_network, "spade_decoder": gen.decoder}
    )

    results = []
    with torch.inference_mode():
        torch.set_num_threads(max(args.threads))
        state = renderer.prepare_source(source, inputs.source_window())  # warm-up
        renderer.render_range(state, inputs, 0, 1, batch_size=1)
        for threads in args.threads:
            torch.set_num_threads(threads)
            t = time.perf_counter()
            timer.reset()
            state = renderer.prepare_source(source, inputs.source_window())
            source_s = time.perf_counter() - t
            for bs in args.batch_sizes:
                timer.reset()
                start = 1  # frame 0 was the warm-up frame
                t = time.perf_counter()
                renderer.render_range(state, inputs, start, start + args.frames, batch_size=bs)
                wall = time.perf_counter() - t
                parts = dict(timer.totals)
                parts["generator_rest"] = wall - sum(parts.values())
                row = {
                    "threads": threads,
                    "batch_size": bs,
                    "frames": args.frames,
                    "seconds_per_frame": wall / args.frames,
                    "share": {k: v / wall for k, v in parts.items()},
                    "source_work_seconds": source_s,
                }
                results.append(row)
                shares = " ".join(f"{k} {v:.0%}" for k, v in row["share"].items())
                print(f"threads {threads} batch {bs}: {row['seconds_per_frame']:.2f} s/frame  ({shares})", flush=True)
            print(f"threads {threads}: per-job source work {source_s:.2f} s", flush=True)

    report = {
        "size": args.size,
        "weights": str(models.root),
        "synthetic": models.synthetic,
        "load_seconds": load_s,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "render.json").write_text(json.dumps(report, indent=2))
    _plot(results, out / "render.png", args.size)
    print(f"wrote {out / 'render.json'} and {out / 'render.png'}")
    return 0


def _plot(results: list[dict], path: Path, size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for threads in sorted({r["threads"] for r in results}):
        rows = [r for r in results if r["threads"] == threads]
        ax1.plot([r["batch_size"] for r in rows], [r["seconds_per_frame"] for r in rows], "o-", label=f"{threads} thread(s)")
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("seconds per frame")
    ax1.set_title(f"face renderer, {size} px")
    ax1.legend()
    labels = [f"t{r['threads']} b{r['batch_size']}" for r in results]
    keys = ["mapping", "dense_motion", "spade_decoder", "generator_rest"]
    bottom = np.zeros(len(results))
    for key in keys:
        vals = np.array([r["share"].get(key, 0.0) for r in results])
        ax2.bar(labels, vals, bottom=bottom, label=key)
        bottom += vals
    ax2.set_ylabel("share of per-frame time")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())

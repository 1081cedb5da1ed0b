"""Benchmark (not a test): render seconds per frame at 512 px against 256 px, fp32 and bf16, in ONE process.

    .venv/bin/python benchmarks/render_sizes.py [--frames 2] [--rounds 2] [--threads 1] [--out benchmarks/results]

Full-size networks with synthetic weights (same cost as the official ones; the 512 store holds only
``SadTalker_V0.0.2_512.safetensors``). Both renderers are built the way the RenderChunk stage builds them
(``load_renderer``: load-time rewrites, allocator settings, huge pages) and render the kit's inputs of their
size (256: golden_crop / golden_face3d / golden_audio2pose; 512: golden_crop_512 / golden_facerender_512)
with ``render_range`` at the job's default batch size 2. The four settings (size x precision) are
interleaved round by round so that other load on a shared machine hits them alike; the ratios use CPU time
(user + system) at ``--threads`` torch threads. Also records the per-job source work and bf16's error
against fp32 at each size. Writes ``render_sizes.json`` into --out (benchmarks/projection.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from synthetic_weights import synthetic_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))
REF = ROOT / "tests" / "fixtures" / "reference" / "sadtalker"
BATCH = 2  # JobParams.batch_size default


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _inputs(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop uint8, coeffs_pred (T, 70), coeff_3dmm (1, 73)) of the kit's goldens for ``size``."""
    if size == 256:
        return (np.load(REF / "golden_crop.npz")["crop_256"], np.load(REF / "golden_audio2pose.npz")["coeffs_pred"],
                np.load(REF / "golden_face3d.npz")["coeff_3dmm"])
    g = np.load(REF / f"golden_facerender_{size}.npz")
    return np.load(REF / f"golden_crop_{size}.npz")[f"crop_{size}"], g["coeffs_pred"], g["coeff_3dmm"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2, help="frames per setting and round (a multiple of 2)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import torch

    from sadtalker.params import JobParams
    from sadtalker.render.animate import load_renderer, source_image_float
    from sadtalker.render.precision import native_bf16
    from sadtalker.render.semantics import prepare_motion
    from sadtalker.weights import ModelStore

    torch.set_num_threads(args.threads)
    precisions = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    load_at_start = os.getloadavg()
    setups, report_sizes = {}, {}
    for size in args.sizes:
        models = ModelStore(synthetic_weights(None, f"safetensors_{size}"))
        t, c = time.perf_counter(), _cpu()
        renderer = load_renderer(models, size, False)
        load = {"cpu_s": round(_cpu() - c, 3), "wall_s": round(time.perf_counter() - t, 3)}
        crop, coeffs, source_3dmm = _inputs(size)
        inputs = prepare_motion(coeffs, source_3dmm, JobParams.load(still=False, size=size))
        source = source_image_float(crop)
        t, c = time.perf_counter(), _cpu()
        state = renderer.prepare_source(source, inputs.source_window())
        work = {"cpu_s": round(_cpu() - c, 3), "wall_s": round(time.perf_counter() - t, 3)}
        setups[size] = (renderer, state, inputs)
        report_sizes[str(size)] = {"model_load": load, "source_work": work}
        print(f"{size} px: load {load['cpu_s']:.1f} s CPU, source work {work['cpu_s']:.2f} s CPU", flush=True)

    settings = [(size, prec) for size in args.sizes for prec in precisions]
    for size, prec in settings:  # warm-up: oneDNN builds its primitives on the first call of a shape
        renderer, state, inputs = setups[size]
        renderer.render_range(state, inputs, 0, BATCH, batch_size=BATCH, precision=prec)
    runs: dict[tuple[int, str], list[dict]] = {s: [] for s in settings}
    frames_out: dict[tuple[int, str], list[np.ndarray]] = {s: [] for s in settings}
    for k in range(args.rounds):
        for size, prec in settings:
            renderer, state, inputs = setups[size]
            start = BATCH + k * args.frames
            t, c = time.perf_counter(), _cpu()
            frames_out[(size, prec)].append(
                renderer.render_range(state, inputs, start, start + args.frames, batch_size=BATCH, precision=prec))
            row = {"cpu_s": round(_cpu() - c, 3), "wall_s": round(time.perf_counter() - t, 3),
                   "load": os.getloadavg()[0]}
            runs[(size, prec)].append(row)
            print(f"round {k} {size} px {prec}: {row['cpu_s'] / args.frames:.2f} s CPU/frame, "
                  f"{row['wall_s'] / args.frames:.2f} s wall/frame (load {row['load']:.1f})", flush=True)

    n = args.frames * args.rounds
    for (size, prec), rows in runs.items():
        report_sizes[str(size)][prec] = {"cpu_s_per_frame": round(sum(r["cpu_s"] for r in rows) / n, 3),
                                         "wall_s_per_frame": round(sum(r["wall_s"] for r in rows) / n, 3), "runs": rows}
    for size in args.sizes:
        if "bf16" in precisions:
            ref, got = (np.concatenate(frames_out[(size, p)]) for p in ("fp32", "bf16"))
            d = np.abs(ref.astype(np.float64) - got)
            mse = float(np.mean(d**2))
            report_sizes[str(size)]["bf16_vs_fp32_error"] = {
                "max_abs": float(d.max()), "mean_abs": float(d.mean()),
                "psnr_db": float("inf") if mse == 0 else round(10 * np.log10(1.0 / mse), 2)}
    ratios = {}
    if 256 in args.sizes:
        base = report_sizes["256"]
        for size in args.sizes:
            for prec in precisions:
                ratios[f"{size}_{prec}_vs_256_fp32"] = round(
                    report_sizes[str(size)][prec]["cpu_s_per_frame"] / base["fp32"]["cpu_s_per_frame"], 3)
            if size != 256:
                for prec in precisions:
                    ratios[f"{size}_vs_256_{prec}"] = round(
                        report_sizes[str(size)][prec]["cpu_s_per_frame"] / base[prec]["cpu_s_per_frame"], 3)
    report = {
        "what": "render CPU seconds per frame, deployed path (load_renderer), batch 2, interleaved rounds",
        "threads": args.threads, "frames_per_round": args.frames, "rounds": args.rounds, "batch_size": BATCH,
        "synthetic_weights": True, "torch": torch.__version__, "native_bf16": native_bf16(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
        "sizes": report_sizes, "ratios": ratios,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "render_sizes.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))
    print(f"wrote {out / 'render_sizes.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

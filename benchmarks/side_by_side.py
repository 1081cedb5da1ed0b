"""Benchmark (not a test): the original-cost plain renderer, our fp32 and our bf16 paths, and both enhancers in
fp32 and bf16, side by side in ONE run: every variant in its own process, interleaved in rounds.

    .venv/bin/python benchmarks/side_by_side.py [--frames 4] [--rounds 2] [--error-frames 2] [--weights DIR]
                                                [--enhancers DIR] [--out benchmarks/results]

Variants (1 torch thread each, full-size networks, synthetic weights, the parity kit's inputs):
- ``render_plain``: ``RenderOptions.plain()`` (the networks as loaded, ``no_grad``, default glibc malloc, no
  huge pages): the cost of the original code's arithmetic, the baseline of every ratio;
- ``render_fp32``: the deployed path (``load_renderer``: load-time rewrites, allocator settings, huge pages);
- ``render_bf16``: the same with ``precision="bf16"`` (only where the CPU has native bf16, see below);
- ``gfpgan_{fp32,bf16}``: GFPGAN v1.4 on the kit's 512 px face (golden_gfpgan input, stored noise);
- ``realesrgan_{fp32,bf16}``: RRDBNet x2 on the kit's 256 px crop (one tile, as SadTalker's tile 400).
Each process loads, warms up once (the warm-up call is also where the FLOPs are counted, torch's
FlopCounterMode) and times ``--frames`` frames (CPU and wall seconds). Rounds interleave the variants, so load
from other processes on the machine hits all of them alike; the JSON records the load average per run.

Also measured in the same run: the peak of a single 3x3 convolution (GFLOP/s, fp32 NCHW / fp32 channels-last /
bf16 channels-last) for the roofline table, and the error of every bf16 network against its fp32 path (PSNR,
max and mean absolute error on [0, 1] images). On a CPU without native bf16 (no AVX512_BF16 / AMX-BF16) the bf16
timings are skipped (the pipeline runs fp32 there), but the error figures are still measured with the same
bf16 kernels (oneDNN's non-native bf16 path: same rounding, far slower). Writes ``side_by_side.json`` and
``side_by_side.png`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "fixtures" / "reference"
RENDER = ("render_plain", "render_fp32", "render_bf16")
ENHANCE = ("gfpgan_fp32", "gfpgan_bf16", "realesrgan_fp32", "realesrgan_bf16")
CONV_SHAPES = ((512, 512, 64), (256, 256, 128), (128, 64, 256))  # cin, cout, side (3x3, batch 1)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _setup_path(plain: bool) -> None:
    # torch reads the huge-page switch once; the plain baseline runs without it, as the original does
    os.environ["THP_MEM_ALLOC_ENABLE"] = "0" if plain else "1"
    sys.path.insert(0, str(ROOT / "layers"))
    sys.path.insert(0, str(ROOT / "benchmarks"))


def _render_setup(variant: str, weights: str | None):
    from sadtalker.params import JobParams
    from sadtalker.render.animate import RenderOptions, build_renderer, source_image_float
    from sadtalker.render.memory import tune_allocator
    from sadtalker.render.semantics import prepare_motion
    from sadtalker.weights import ModelStore
    from synthetic_weights import synthetic_weights

    models = ModelStore(synthetic_weights(weights))
    if variant == "render_plain":
        renderer = build_renderer(models, 256, False, RenderOptions.plain())
    else:
        tune_allocator()  # what load_renderer does (without its cache)
        renderer = build_renderer(models, 256, False)
    sad = REF / "sadtalker"
    inputs = prepare_motion(np.load(sad / "golden_audio2pose.npz")["coeffs_pred"],
                            np.load(sad / "golden_face3d.npz")["coeff_3dmm"], JobParams.load(still=False))
    source = source_image_float(np.load(sad / "golden_crop.npz")["crop_256"])
    state = renderer.prepare_source(source, inputs.source_window())
    precision = "bf16" if variant == "render_bf16" else "fp32"
    return lambda a, b: renderer.render_range(state, inputs, a, b, batch_size=2, precision=precision)


def _enhance_setup(variant: str, weights: str | None):
    import torch

    from sadtalker.enhance.loaders import load_gfpgan, load_rrdbnet
    from sadtalker.weights import ModelStore
    from synthetic_weights import synthetic_weights

    models = ModelStore(synthetic_weights(weights, layout=None))
    net_name, precision = variant.split("_")
    if net_name == "gfpgan":
        net = load_gfpgan(models, precision)
        x = torch.from_numpy(np.load(REF / "enhancers" / "golden_gfpgan.npz")["input"])

        def run(a: int, b: int) -> np.ndarray:
            with torch.inference_mode():
                outs = [net(x, randomize_noise=False)[0] for _ in range(a, b)]
            return ((torch.cat(outs).clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    else:
        net = load_rrdbnet(models, precision)
        crop = np.load(REF / "sadtalker" / "golden_crop.npz")["crop_256"]
        x = torch.from_numpy(crop.astype(np.float32).transpose(2, 0, 1) / np.float32(255))[None]

        def run(a: int, b: int) -> np.ndarray:
            with torch.inference_mode():
                outs = [net(x) for _ in range(a, b)]
            return torch.cat(outs).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return run


def worker(args: argparse.Namespace) -> dict:
    """One variant in this process: load, warm up (counting FLOPs), time ``frames`` frames."""
    variant = args.worker
    _setup_path(plain=variant == "render_plain")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    t = time.perf_counter()
    run = _render_setup(variant, args.weights) if variant in RENDER else _enhance_setup(variant, args.enhancers)
    load_s = time.perf_counter() - t
    warm = 2 if variant in RENDER else 1
    with FlopCounterMode(display=False) as fc:
        t = time.perf_counter()
        run(0, warm)
        warm_s = time.perf_counter() - t
    gflop = fc.get_total_flops() / warm / 1e9
    load0 = os.getloadavg()[0]
    c, w = _cpu(), time.perf_counter()
    run(warm, warm + args.frames)
    c, w = _cpu() - c, time.perf_counter() - w
    return {"variant": variant, "frames": args.frames, "cpu_s_per_frame": c / args.frames,
            "wall_s_per_frame": w / args.frames, "gflop_per_frame": gflop, "load_s": load_s,
            "first_call_s": warm_s, "load_average": [load0, os.getloadavg()[0]]}


def peak_worker() -> dict:
    """GFLOP/s of a single 3x3 convolution, 1 thread, per layout and dtype."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    rows = []
    for cin, cout, side in CONV_SHAPES:
        flop = 2 * cin * cout * 9 * side * side
        row = {"conv": f"{cin}->{cout} at {side}x{side}"}
        for name, dtype, cl in (("fp32_nchw", torch.float32, False), ("fp32_cl", torch.float32, True),
                                ("bf16_cl", torch.bfloat16, True)):
            x, w = torch.randn(1, cin, side, side, dtype=dtype), torch.randn(cout, cin, 3, 3, dtype=dtype)
            if cl:
                x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                F.conv2d(x, w, padding=1)
                n, t = 0, time.perf_counter()
                while n < 3 or time.perf_counter() - t < 1.0:
                    F.conv2d(x, w, padding=1)
                    n += 1
                row[name] = round(flop * n / (time.perf_counter() - t) / 1e9, 1)
        rows.append(row)
    return {"convs": rows, "peak_gflops": {k: max(r[k] for r in rows) for k in ("fp32_nchw", "fp32_cl", "bf16_cl")}}


class EmulatedBF16Convs:
    """Every bf16 convolution computed in float32 from its bf16 operands, the result rounded to bf16.

    That is the arithmetic of oneDNN's native bf16 convolutions (bf16 x bf16 products are exact in float32,
    float32 accumulation, bf16 output), up to the order of the sums. Used for the error figures on CPUs
    without native bf16, where oneDNN's fallback bf16 convolutions are far too slow (3-D ones: < 0.1 GFLOP/s).
    The networks' own bf16 code runs unchanged; only the kernel is swapped.
    """

    def __enter__(self):
        import torch
        from torch.overrides import TorchFunctionMode

        convs = {torch.nn.functional.conv2d, torch.nn.functional.conv3d, torch.conv2d, torch.conv3d}

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func in convs and args[0].dtype == torch.bfloat16:
                    args = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
                    kwargs = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
                    return func(*args, **kwargs).to(torch.bfloat16)
                return func(*args, **kwargs)

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mode.__exit__(*exc)


def error_worker(args: argparse.Namespace) -> dict:
    """bf16 against fp32 on the same inputs, per network (native bf16 kernels, else ``EmulatedBF16Convs``)."""
    _setup_path(plain=False)
    import contextlib

    import torch

    from sadtalker.render.precision import native_bf16

    torch.set_num_threads(1)
    kernels = contextlib.nullcontext() if native_bf16() else EmulatedBF16Convs()
    out = {"kernels": "native" if native_bf16() else "emulated (float32 sums of bf16 operands, bf16 results)"}
    n = args.error_frames
    fp32, bf16 = _render_setup("render_fp32", args.weights), _render_setup("render_bf16", args.weights)
    ref = fp32(0, n)
    with kernels:
        out["renderer"] = image_error(ref, bf16(0, n)) | {"frames": n}
    for net in ("gfpgan", "realesrgan"):
        a, b = _enhance_setup(f"{net}_fp32", args.enhancers), _enhance_setup(f"{net}_bf16", args.enhancers)
        ref = a(0, 1)
        with kernels:
            out[net] = image_error(ref, b(0, 1)) | {"frames": 1}
    return out


def image_error(ref: np.ndarray, got: np.ndarray) -> dict:
    d = np.abs(ref.astype(np.float64) - got)
    mse = float(np.mean(d**2))
    return {"psnr_db": float("inf") if mse == 0 else round(10 * np.log10(1.0 / mse), 2),
            "max_abs": round(float(d.max()), 4), "mean_abs": round(float(d.mean()), 6)}


def _spawn(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, __file__, *extra, "--frames", str(args.frames), "--error-frames", str(args.error_frames)]
    for flag in ("weights", "enhancers"):
        if getattr(args, flag):
            cmd += [f"--{flag}", getattr(args, flag)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{' '.join(extra)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4, help="timed frames (faces, tiles) per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--error-frames", type=int, default=2, help="rendered frames compared bf16 vs fp32")
    ap.add_argument("--weights")
    ap.add_argument("--enhancers")
    ap.add_argument("--skip", nargs="*", default=[], help="variants (or 'errors', 'peak') not to run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.worker == "peak":
            print(json.dumps(peak_worker()))
        elif args.worker == "errors":
            print(json.dumps(error_worker(args)))
        else:
            print(json.dumps(worker(args)))
        return 0

    sys.path.insert(0, str(ROOT / "layers"))
    from sadtalker.render.precision import cpu_flags, native_bf16

    bf16 = native_bf16()
    variants = [v for v in RENDER + ENHANCE if v not in args.skip and (bf16 or not v.endswith("bf16"))]
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": 1,
                    "bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx")),
                    "avx512f": "avx512f" in cpu_flags(), "native_bf16": bf16,
                    "load_average_at_start": os.getloadavg(), "frames": args.frames, "rounds": args.rounds,
                    "runs": []}
    if not bf16:
        report["bf16_timing"] = "skipped: no native bf16 on this CPU (precision=bf16 runs fp32 here)"
    t0 = time.perf_counter()
    if "peak" not in args.skip:
        report["peak"] = _spawn(args, "--worker", "peak")
        _say(f"peak: {report['peak']['peak_gflops']}")
    for k in range(args.rounds):
        for v in variants:
            row = _spawn(args, "--worker", v) | {"round": k}
            report["runs"].append(row)
            _say(f"round {k} {v}: cpu {row['cpu_s_per_frame']:.2f} s/frame wall {row['wall_s_per_frame']:.2f} "
                 f"({row['gflop_per_frame']:.0f} GFLOP/frame, load {row['load_average'][0]:.1f})")
    if "errors" not in args.skip:
        report["bf16_vs_fp32_error"] = _spawn(args, "--worker", "errors")
        _say(f"errors: {report['bf16_vs_fp32_error']}")
    report["summary"] = summarize(report)
    report["load_average_at_end"] = os.getloadavg()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "side_by_side.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "side_by_side.png")
    for name, row in report["summary"].items():
        _say(f"{name}: {row}")
    return 0


def summarize(report: dict) -> dict:
    """Per variant: mean CPU s/frame over the rounds, ratio to its baseline, GFLOP/s and share of the peak."""
    peak = report.get("peak", {}).get("peak_gflops", {})
    rows: dict[str, dict] = {}
    for v in dict.fromkeys(r["variant"] for r in report["runs"]):
        runs = [r for r in report["runs"] if r["variant"] == v]
        cpu = float(np.mean([r["cpu_s_per_frame"] for r in runs]))
        gflop = runs[0]["gflop_per_frame"]
        prec = "bf16" if v.endswith("bf16") else "fp32"
        rows[v] = {"cpu_s_per_frame": round(cpu, 3),
                   "wall_s_per_frame": round(float(np.mean([r["wall_s_per_frame"] for r in runs])), 3),
                   "gflop_per_frame": round(gflop, 1), "gflops_achieved": round(gflop / cpu, 1)}
        ref_peak = peak.get("bf16_cl" if prec == "bf16" else "fp32_cl")
        if ref_peak:
            rows[v]["share_of_conv_peak"] = round(gflop / cpu / ref_peak, 3)
    for v, row in rows.items():
        base = "render_plain" if v.startswith("render") else v.replace("bf16", "fp32")
        if base in rows:
            row["ratio"] = round(row["cpu_s_per_frame"] / rows[base]["cpu_s_per_frame"], 3)
            row["ratio_vs"] = base
    return rows


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["summary"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    names = list(s)
    ax1.bar(names, [s[n]["cpu_s_per_frame"] for n in names], color=["C1" if "bf16" in n else "C0" for n in names])
    for i, n in enumerate(names):
        if "ratio" in s[n]:
            ax1.text(i, s[n]["cpu_s_per_frame"], f"{s[n]['ratio']:.2f}x", ha="center", va="bottom", fontsize=8)
    ax1.set_ylabel("CPU s per frame (1 thread)")
    ax1.set_title(f"side by side, {report['cpu']}, load {report['load_average_at_start'][0]:.1f}")
    ax1.tick_params(axis="x", rotation=30)
    ax2.bar(names, [s[n]["gflops_achieved"] for n in names], color="C2")
    for key, style in (("fp32_cl", "--"), ("bf16_cl", ":")):
        val = report.get("peak", {}).get("peak_gflops", {}).get(key)
        if val:
            native = key != "bf16_cl" or report.get("native_bf16")
            ax2.axhline(val, ls=style, color="k",
                        label=f"single conv peak {key}: {val:.0f}" + ("" if native else " (no native bf16)"))
    ax2.set_ylabel("GFLOP/s achieved")
    ax2.tick_params(axis="x", rotation=30)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())

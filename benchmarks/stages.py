"""Benchmark (not a test): the CPU cost of every stage of a job, side by side in ONE process.

    .venv/bin/python benchmarks/stages.py [--frames 2] [--weights DIR] [--enhancers DIR] [--skip-enhance]
                                          [--out benchmarks/results]

Full-size networks with synthetic weights (they cost exactly what the real ones cost). Measured, each as
CPU seconds (this process + finished children such as ffmpeg) and wall seconds:
- model load of every family (renderer, audio nets, 3DMM regressor + landmarks, GFPGAN, RealESRGAN);
- the stage functions on the example photo / speech: Preprocess (crop and full), AudioFeatures, Audio2Coeff;
- render seconds per frame of the plain eager path and of every inference rewrite (``RenderOptions``),
  batch 1 vs 2, bf16 (when the CPU has it) and 1 vs 2 torch threads, plus bf16's error against fp32;
- paste-back per frame (crop: aspect resize; full: seamlessClone into the photo);
- enhance per frame through ``benchmarks/enhance.py``'s runner (GFPGAN; RealESRGAN with and without
  changed-tile reuse);
- H.264 + AAC encode per second of video (256 px and photo-size frames).

Other processes on the machine change wall times a lot: every render variant is measured in the same run,
interleaved, and the ratios use CPU time at 1 thread (the thread-scaling rows necessarily use wall time).
The JSON records the load average. Writes ``stages.json`` and ``stages.png`` into --out; the projection
(benchmarks/projection.py) reads the JSON. Runs in about 9 minutes on an idle 2-core machine (``--rounds 1``: 7).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthetic_weights import synthetic_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))
# The renderer package turns torch's huge-page allocations on by default; the plain baseline must run
# without them (torch reads the switch once), so the benchmark decides before torch loads (--huge-pages).
os.environ["THP_MEM_ALLOC_ENABLE"] = "1" if "--huge-pages" in sys.argv else "0"
sys.path.insert(0, str(ROOT))
REF = ROOT / "tests" / "fixtures" / "reference" / "sadtalker"
EXAMPLES = ROOT / "examples"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Clock:
    """CPU (incl. finished children) and wall seconds of a block."""

    def __enter__(self) -> Clock:
        self.cpu, self.wall = _cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = _cpu() - self.cpu, time.perf_counter() - self.wall

    def row(self, **extra: Any) -> dict:
        return {"cpu_s": round(self.cpu, 3), "wall_s": round(self.wall, 3), **extra}


def _timed(fn: Callable[[], Any], **extra: Any) -> tuple[Any, dict]:
    with Clock() as c:
        out = fn()
    return out, c.row(**extra)


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- render ---------------------------------------------------------------------------------------------
def render_variants(models, frames: int, rounds: int = 2) -> dict:
    """Seconds per frame of every renderer variant, interleaved in rounds, plus bf16's error."""
    import torch

    from sadtalker.params import JobParams
    from sadtalker.render.animate import RenderOptions, build_renderer, source_image_float
    from sadtalker.render.precision import native_bf16
    from sadtalker.render.semantics import prepare_motion

    coeffs = np.load(REF / "golden_audio2pose.npz")["coeffs_pred"]
    source_3dmm = np.load(REF / "golden_face3d.npz")["coeff_3dmm"]
    crop = np.load(REF / "golden_crop.npz")["crop_256"]
    inputs = prepare_motion(coeffs, source_3dmm, JobParams.load(still=False))
    source = source_image_float(crop)

    torch.set_num_threads(1)
    out: dict[str, Any] = {"frames_per_variant": frames, "loads": {}}
    plain, out["loads"]["renderer_plain"] = _timed(lambda: build_renderer(models, 256, False, RenderOptions.plain()))
    fast, out["loads"]["renderer_optimized"] = _timed(lambda: build_renderer(models, 256, False))
    states = {}
    for name, r in (("plain", plain), ("fast", fast)):
        states[name], out[f"source_work_{name}"] = _timed(lambda r=r: r.prepare_source(source, inputs.source_window()))

    def set_spade(renderer, on: bool) -> None:
        from sadtalker.nets.generator import SPADE

        for m in renderer.generator.modules():
            if isinstance(m, SPADE):
                if on:
                    m.optimize()
                else:
                    m._fast = None

    def grad_mode(renderer, inference: bool) -> None:
        renderer._grad_off = torch.inference_mode if inference else torch.no_grad

    # name -> (renderer, state key, batch, precision, setup)
    variants: dict[str, tuple] = {
        "plain_eager_b2": (plain, "plain", 2, "fp32", lambda: grad_mode(plain, False)),
        "inference_mode_b2": (plain, "plain", 2, "fp32", lambda: grad_mode(plain, True)),
        "fold_bn+inference_mode_b2": (fast, "fast", 2, "fp32", lambda: set_spade(fast, False)),
        "optimized_b2": (fast, "fast", 2, "fp32", lambda: set_spade(fast, True)),
        "optimized_b1": (fast, "fast", 1, "fp32", lambda: set_spade(fast, True)),
    }
    bf16 = native_bf16()
    out["native_bf16"] = bf16
    if bf16:
        variants["optimized_bf16_b2"] = (fast, "fast", 2, "bf16", lambda: set_spade(fast, True))
    # warm-up once per distinct set of kernels: oneDNN builds its primitives on the first call of a shape
    for name in ("plain_eager_b2", "fold_bn+inference_mode_b2", "optimized_b2", "optimized_b1", "optimized_bf16_b2"):
        if name in variants:
            r, sk, bs, prec, setup = variants[name]
            setup()
            r.render_range(states[sk], inputs, 0, bs, batch_size=bs, precision=prec)
    per: dict[str, list[dict]] = {name: [] for name in variants}
    frames_out: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    for k in range(rounds):
        for name, (r, sk, bs, prec, setup) in variants.items():
            setup()
            start = 1 + k * frames
            with Clock() as c:
                frames_out[name].append(
                    r.render_range(states[sk], inputs, start, start + frames, batch_size=bs, precision=prec))
            per[name].append(c.row(load=os.getloadavg()[0]))
            _say(f"render {name}: cpu {c.cpu / frames:.2f} s/frame wall {c.wall / frames:.2f} s/frame")
    rows = {}
    base = sum(r["cpu_s"] for r in per["plain_eager_b2"])
    for name, runs in per.items():
        cpu = sum(r["cpu_s"] for r in runs)
        wall = sum(r["wall_s"] for r in runs)
        n = frames * rounds
        rows[name] = {"cpu_s_per_frame": round(cpu / n, 3), "wall_s_per_frame": round(wall / n, 3),
                      "cpu_ratio_vs_plain_b2": round(cpu / base, 3), "runs": runs}
    out["threads_1"] = rows
    # errors on the same frames: the float32 rewrites against the plain path, bf16 against float32
    ref = np.concatenate(frames_out["plain_eager_b2"])
    opt = np.concatenate(frames_out["optimized_b2"])
    out["optimized_vs_plain_error"] = image_error(ref, opt)
    if bf16:
        out["bf16_vs_fp32_error"] = image_error(opt, np.concatenate(frames_out["optimized_bf16_b2"]))

    # last (it changes the whole process): glibc keeps freed blocks in the heap (memory.tune_allocator)
    from sadtalker.render.memory import tune_allocator

    out["allocator_tuned"] = tune_allocator()
    with Clock() as c:
        fast.render_range(states["fast"], inputs, 1, 1 + frames, batch_size=2)
    with Clock() as c:
        fast.render_range(states["fast"], inputs, 1 + frames, 1 + 2 * frames, batch_size=2)
    rows["optimized_b2+allocator"] = {"cpu_s_per_frame": round(c.cpu / frames, 3),
                                      "wall_s_per_frame": round(c.wall / frames, 3),
                                      "cpu_ratio_vs_plain_b2": round(c.cpu * rounds / base, 3), "runs": [c.row()]}
    _say(f"render optimized_b2+allocator: cpu {c.cpu / frames:.2f} s/frame wall {c.wall / frames:.2f} s/frame")

    # thread scaling 1 -> 2 of the optimized path (wall time: the only thing threads change), interleaved
    set_spade(fast, True)
    walls: dict[int, list[dict]] = {1: [], 2: []}
    for threads in (1, 2, 1, 2):
        torch.set_num_threads(threads)
        with Clock() as c:
            fast.render_range(states["fast"], inputs, 1, 1 + frames, batch_size=2)
        walls[threads].append(c.row(load=os.getloadavg()[0]))
    torch.set_num_threads(1)
    w1, w2 = (sum(x["wall_s"] for x in walls[t]) for t in (1, 2))
    out["thread_scaling"] = {"variant": "optimized_b2", "wall_s_per_frame_1t": round(w1 / (2 * frames), 3),
                             "wall_s_per_frame_2t": round(w2 / (2 * frames), 3), "speedup_2t": round(w1 / w2, 3),
                             "runs": walls}
    _say(f"threads: 1 -> 2 threads speedup {w1 / w2:.2f}")
    return out


def image_error(ref: np.ndarray, got: np.ndarray) -> dict:
    """max/mean abs on [0, 1] floats, PSNR (dB), and on the uint8 frames the pipeline stores."""
    from sadtalker.render.animate import to_ubyte

    d = np.abs(ref.astype(np.float64) - got)
    mse = float(np.mean(d**2))
    du8 = np.abs(to_ubyte(ref).astype(np.int16) - to_ubyte(got))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "psnr_db": float("inf") if mse == 0 else round(10 * np.log10(1.0 / mse), 2),
            "uint8_max_levels": int(du8.max()), "uint8_mean_levels": round(float(du8.mean()), 4)}


# --- the other stages -------------------------------------------------------------------------------------
def job_stages(models) -> tuple[dict, dict]:
    """Model loads + Preprocess / AudioFeatures / Audio2Coeff stage functions on the examples."""
    import torch

    from sadtalker.coefficients import load_audio_models
    from sadtalker.face.landmarks import get_landmark_backend
    from sadtalker.jobs import JobKeys
    from sadtalker.nets.face_recon import load_face_recon
    from sadtalker.params import JobParams
    from sadtalker.stages.audio2coeff import audio2coeff
    from sadtalker.stages.audio_features import audio_features
    from sadtalker.stages.preprocess import preprocess
    from sadtalker.storage import LocalStorage

    torch.set_num_threads(1)
    loads, stages = {}, {}
    _, loads["audio_nets"] = _timed(lambda: load_audio_models(models, 256))
    _, loads["face_recon"] = _timed(lambda: load_face_recon(models, 256))
    _, loads["landmarks"] = _timed(lambda: get_landmark_backend("auto", models.root))
    tmp = tempfile.mkdtemp(prefix="sadtalker-bench-")
    storage = LocalStorage(tmp)
    storage.put("inbox/j/portrait.png", (EXAMPLES / "portrait.png").read_bytes())
    storage.put("inbox/j/speech.wav", (EXAMPLES / "speech.wav").read_bytes())
    storage.put("inbox/j/speech8.wav", (REF / "speech_8s.wav").read_bytes())
    for mode in ("crop", "full"):
        job = JobKeys(f"bench-{mode}")
        _, stages[f"preprocess_{mode}"] = _timed(lambda job=job, mode=mode: preprocess(
            storage, job, "inbox/j/portrait.png", JobParams.load(preprocess=mode, seed=0), models))
    for name, key in (("3s", "inbox/j/speech.wav"), ("8s", "inbox/j/speech8.wav")):
        job = JobKeys("bench-crop") if name == "3s" else JobKeys("bench-full")
        info, stages[f"audio_features_{name}"] = _timed(
            lambda job=job, key=key: audio_features(storage, job, key, JobParams.load(seed=0)))
        stages[f"audio_features_{name}"]["frames"] = info["num_frames"]
        _, stages[f"audio2coeff_{name}"] = _timed(lambda job=job: audio2coeff(storage, job, JobParams.load(seed=1), models))
    stages["_storage"] = tmp
    return loads, stages


def paste_and_encode(storage_root: str) -> dict:
    """Paste-back per frame (crop / full) and H.264 + AAC encode per second of video."""
    from PIL import Image

    from sadtalker.jobs import JobKeys
    from sadtalker.params import JobParams
    from sadtalker.paste_back import PasteBack
    from sadtalker.storage import LocalStorage
    from sadtalker.video import encode_video

    storage = LocalStorage(storage_root)
    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    render = np.asarray(Image.open(io.BytesIO(storage.get(JobKeys("bench-full").source_image))).convert("RGB"))
    frames = [np.clip(render.astype(np.int16) + rng.integers(-3, 4, render.shape), 0, 255).astype(np.uint8)
              for _ in range(10)]
    composed = {}
    for mode in ("crop", "full"):
        job = JobKeys(f"bench-{mode}")
        face = storage.get_npz(job.face)
        original = np.asarray(Image.open(io.BytesIO(storage.get(job.original_image))).convert("RGB"))
        paste = PasteBack(face, original, JobParams.load(preprocess=mode))
        with Clock() as c:
            composed[mode] = [paste(f) for f in frames]
        out[f"paste_back_{mode}"] = c.row(cpu_s_per_frame=round(c.cpu / len(frames), 4),
                                          frame_shape=list(composed[mode][0].shape))
    wav = np.zeros(16000 * 2, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("crop", "full"):
            clip = (composed[mode] * 5)[:50]  # 2 s at 25 fps
            with Clock() as c:
                encode_video(iter(clip), wav, Path(tmp) / f"{mode}.mp4")
            out[f"encode_{mode}"] = c.row(cpu_s_per_video_second=round(c.cpu / 2, 3), frame_shape=list(clip[0].shape))
    return out


def enhance(frames: int, enhancers: str | None) -> dict:
    """GFPGAN and RealESRGAN per frame through the enhancer benchmark's runner (imported, not copied)."""
    import torch

    from benchmarks import enhance as enhance_bench
    from sadtalker.enhance.upsampler import REUSE_TILE, SADTALKER_TILE
    from sadtalker.params import JobParams
    from sadtalker.weights import ModelStore

    torch.set_num_threads(1)
    root = synthetic_weights(enhancers, layout=None)
    models = ModelStore(root)
    out: dict[str, Any] = {}
    face_frames, lm = enhance_bench._frames(256, frames)
    with Clock() as c:
        row = enhance_bench._run(models, JobParams.load(enhancer="gfpgan"), face_frames, lm, 1, None)
    out["gfpgan_256"] = {**row, **c.row()}
    _say(f"gfpgan: {row['compute_s_per_frame']} s/frame")
    bg_frames, lm = enhance_bench._frames(256, frames)
    full = JobParams.load(enhancer="gfpgan", background_enhancer="realesrgan", preprocess="full")
    for tile, reuse in ((REUSE_TILE, True), (SADTALKER_TILE, False)):
        with Clock() as c:
            row = enhance_bench._run(models, full, bg_frames, lm, 1, tile, reuse)
        out[f"gfpgan+realesrgan_256_tile{tile}_reuse{int(reuse)}"] = {**row, **c.row()}
        _say(f"realesrgan tile {tile} reuse {reuse}: background {row['background_s_per_frame']} s/frame")
    out["tile_work_full_mode"] = enhance_bench.tile_work(photo_sizes=(512,), n=3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="SadTalker weights directory (default: synthetic full-size)")
    ap.add_argument("--enhancers", help="directory with GFPGANv1.4.pth and RealESRGAN_x2plus.pth (default: synthetic)")
    ap.add_argument("--frames", type=int, default=2, help="frames per render variant and round")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the render variants")
    ap.add_argument("--enhance-frames", type=int, default=2)
    ap.add_argument("--skip-enhance", action="store_true")
    ap.add_argument("--huge-pages", action="store_true", help="torch's THP allocations for every variant")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import torch

    from sadtalker.render.precision import cpu_flags
    from sadtalker.weights import ModelStore

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    models = ModelStore(synthetic_weights(args.weights))
    report: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f)},
        "weights": {"dir": str(models.root), "synthetic": models.synthetic},
        "load_average_at_start": load_start,
        "note": "cpu_s = user+sys of this process and its finished children; ratios use CPU time at 1 thread",
        "huge_pages": os.environ["THP_MEM_ALLOC_ENABLE"] == "1",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so an interrupted run keeps what it measured
        report["load_average_now"] = os.getloadavg()
        report["total_wall_s"] = round(time.perf_counter() - t_start, 1)
        (out / "stages.json").write_text(json.dumps(report, indent=2) + "\n")

    _say("render variants")
    render = render_variants(models, args.frames, args.rounds)
    report["model_load"] = render.pop("loads")
    report["render"] = render
    save()
    _say("model loads and job stages")
    loads, stages = job_stages(models)
    report["model_load"].update(loads)
    storage_root = stages.pop("_storage")
    report["stages"] = stages
    save()
    _say("paste-back and encode")
    report["compose"] = paste_and_encode(storage_root)
    save()
    if not args.skip_enhance:
        _say("enhancers")
        report["enhance"] = enhance(args.enhance_frames, args.enhancers)
    save()
    plot(report, out / "stages.png")
    _say(f"wrote {out / 'stages.json'} and {out / 'stages.png'} in {report['total_wall_s']} s")
    return 0


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    costs = {"preprocess crop": report["stages"]["preprocess_crop"]["cpu_s"],
             "preprocess full": report["stages"]["preprocess_full"]["cpu_s"],
             "audio features 8s": report["stages"]["audio_features_8s"]["cpu_s"],
             "audio2coeff 8s": report["stages"]["audio2coeff_8s"]["cpu_s"],
             "render/frame plain": report["render"]["threads_1"]["plain_eager_b2"]["cpu_s_per_frame"],
             "render/frame opt": report["render"]["threads_1"]["optimized_b2"]["cpu_s_per_frame"],
             "paste full/frame": report["compose"]["paste_back_full"]["cpu_s_per_frame"],
             "encode/s video full": report["compose"]["encode_full"]["cpu_s_per_video_second"]}
    if "optimized_bf16_b2" in report["render"]["threads_1"]:
        costs["render/frame bf16"] = report["render"]["threads_1"]["optimized_bf16_b2"]["cpu_s_per_frame"]
    for key, row in report.get("enhance", {}).items():
        if isinstance(row, dict) and "compute_s_per_frame" in row:
            costs[key.replace("gfpgan+realesrgan_256_", "esrgan ")] = row["compute_s_per_frame"]
    ax1.barh(list(costs), list(costs.values()))
    ax1.set_xlabel("CPU seconds (1 thread)")
    ax1.set_title("stage costs (synthetic full-size weights, 256 px)")
    rows = report["render"]["threads_1"]
    ax2.bar(list(rows), [r["cpu_ratio_vs_plain_b2"] for r in rows.values()])
    ax2.axhline(0.7, color="r", ls="--", lw=1, label="target 0.7")
    ax2.set_ylabel("CPU time per frame / plain eager (batch 2)")
    ax2.set_title("render variants, same run")
    ax2.tick_params(axis="x", rotation=35, labelsize=7)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())

"""Projection (not a test): wall time and dollar cost per job on the deployed stack, from measured stage costs.

    .venv/bin/python benchmarks/projection.py [--stages benchmarks/results/stages.json] [--markdown]
                                              [--sizes benchmarks/results/render_sizes.json]
                                              [--side-by-side benchmarks/results/side_by_side.json]
                                              [--local-check /tmp/perf/gen.log]

Every input is either a measurement from benchmarks/stages.py (CPU seconds at 1 thread on the benchmark
machine) or a named assumption of ``Assumptions`` below (AWS limits, latencies, prices). The model:

- A stage's CPU work runs on ``n`` vCPUs at ``speedup(n) = 1 / (s + (1 - s) / n)`` (Amdahl, serial fraction
  ``s``); a Lambda's vCPUs follow its memory (1,769 MB = 1 vCPU, at most 6); one vCPU = one benchmark core.
- Heavy Lambdas pay a cold start (image + runtime + imports) plus reading the weights on the first call;
  the projection shows a cold job (every container new) and a warm one.
- The flow of issue #14, on PlanChunks' own plan (``make_plan``: chunk sizing and enhancement ranges):
  RenderChunks is a Distributed Map, ``concurrency`` chunks at a time, so ``waves = ceil(chunks /
  concurrency)``; without an enhancer each chunk also pastes back and encodes its own H.264 segment.
  With an enhancer, EnhanceRanges runs one Fargate task per range, all side by side (start latency +
  weights + per-frame enhancement on its vCPUs + the range's segment encode). Finalize is always the
  Lambda: it concatenates the segments without re-encoding the video and adds one AAC track.
- Sizes (Lambda memory, the Fargate task) are the deployed defaults of functions/contract.py.
- 512 px jobs (``size=512``): the 256 px render and source-work figures times the 512/256 CPU ratio that
  benchmarks/render_sizes.py measured side by side in one process (fp32 and bf16 separately); chunk sizing,
  chunk bytes and the crop-mode encode follow the size. Preprocess and the audio stages do not depend on it.
- ``precision=bf16`` rows: the renderer's and enhancers' bf16/fp32 ratios of benchmarks/side_by_side.py when
  it ran on a CPU with native bf16 (``BF16_CPUS`` says which CPUs they hold on), else stages.json's bf16 row.
- Cost: ``sadtalker.pricing.bill`` (the one price table, shared with the quote and result.json's actual
  cost): Lambda GB-seconds + requests, Fargate vCPU-hours and GB-hours, Step Functions state transitions
  (a Map item's child execution included), S3 requests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers"))

sys.path.insert(0, str(ROOT))

from functions.quote import deployed_stack  # noqa: E402 - after the path set-up
from sadtalker import pricing  # noqa: E402
from sadtalker.params import JobParams  # noqa: E402
from sadtalker.pricing import PRICES, Prices, Stack, Usage, bill  # noqa: E402
from sadtalker.stages.plan_chunks import make_plan  # noqa: E402


@dataclass(frozen=True)
class Assumptions:
    """Every number the projection uses that is not measured by benchmarks/stages.py."""

    serial_fraction: float = 0.10  # Amdahl s; used when the benchmark's 1->2 thread figure is not trustworthy
    vcpu_speed: float = 1.0  # a Lambda/Fargate vCPU vs one benchmark core (AVX-512 Xeon)
    cold_start_s: float = 10.0  # heavy container image: lazy image load + Python + torch import
    light_cold_start_s: float = 0.5  # zip functions without torch
    weights_read_mb_s: float = 150.0  # weights from the image (or /tmp) at cold start
    weights_mb: dict = field(default_factory=lambda: {"renderer": 650, "face": 200, "audio": 60, "enhancers": 415})
    s3_mb_s: float = 80.0  # one Lambda/task stream to S3, same region
    s3_latency_s: float = 0.05  # per request
    transition_latency_s: float = 0.05  # Step Functions per state transition / task dispatch
    # RenderConcurrency, the render Map's items in flight; main() runs every row at the recommended one
    map_concurrency: int = 10
    map_run_start_s: float = 2.0  # a Distributed Map run: reading the item array, starting child executions
    # an enhancement task's start: placement + pulling the ~2.2 GB enhancer image (no lazy loading on
    # Fargate) + Python/torch import; AWS quotes tens of seconds. PlanChunks admits with a generous 120 s.
    fargate_start_s: float = 60.0
    enhance_parallel_efficiency: float = 0.9  # enhance_frames worker processes, one per vCPU
    concat_s: float = 1.5  # ffmpeg concat demuxer, stream copy, +faststart, preview frames decoded
    aac_s_per_second: float = 0.01  # one AAC track from the job's waveform
    photo_px: int = 512 * 512  # the example portrait; full-mode paste-back / background work scale with it
    frame_bytes_256: int = 256 * 256 * 3  # an uncompressed chunk frame (np.savez)
    video_kbit_s: float = 2000.0
    validate_s: float = 0.5
    light_s: float = 0.2  # plan_chunks, check_result


@dataclass(frozen=True)
class Workload:
    name: str
    seconds: float
    still: bool = True
    preprocess: str = "crop"
    enhancer: str = ""
    seed_wall_s: float = 0.0  # the seed project (Flyte, 8 vCPU nodes, CPU only)
    size: int = 256  # face render size

    @property
    def frames(self) -> int:
        return int(round(self.seconds * 25))

    @property
    def full(self) -> bool:
        return self.preprocess in ("full", "extfull")


SIZE_512_WORKLOADS = (  # the seed's workloads without enhancer, at size=512 (the seed has no 512 timings)
    Workload("3 s, defaults, 512 px", 3, size=512),
    Workload("8 s, defaults, 512 px", 8, size=512),
    Workload("8 s, still=False, full, 512 px", 8, still=False, preprocess="full", size=512),
)
SEED_WORKLOADS = (
    Workload("3 s, defaults", 3, seed_wall_s=6 * 60 + 23),
    Workload("8 s, defaults", 8, seed_wall_s=9 * 60 + 58),
    Workload("8 s, still=False, full", 8, still=False, preprocess="full", seed_wall_s=9 * 60 + 40),
    Workload("8 s, still, gfpgan, full", 8, preprocess="full", enhancer="gfpgan", seed_wall_s=19 * 60 + 8),
    Workload("25 s, still=False, gfpgan, full", 25, still=False, preprocess="full", enhancer="gfpgan",
             seed_wall_s=56 * 60 + 3),
    Workload("300 s, defaults", 300),
    Workload("300 s, still=False, gfpgan, full", 300, still=False, preprocess="full", enhancer="gfpgan"),
)
# Issue #14's goals (projected, warm containers, default stack); the 8 s defaults job must also stay <= $0.075.
GOALS_S = {"8 s, defaults": 30, "8 s, still, gfpgan, full": 120, "25 s, still=False, gfpgan, full": 240,
           "300 s, defaults": 180, "300 s, still=False, gfpgan, full": 1200}
GOAL_8S_USD = 0.075
CONCURRENCY_CHOICES = (10, 25, 50, 100, 150, 200, 400)


class Costs:
    """The measured stage costs (CPU seconds at 1 thread) from stages.json."""

    def __init__(self, report: dict, variant: str | None = None, sizes: dict | None = None) -> None:
        r, s, c = report["render"], report["stages"], report["compose"]
        if variant is None:  # what the deployed code runs: the rewrites + the allocator settings
            variant = "optimized_b2+allocator" if "optimized_b2+allocator" in r["threads_1"] else "optimized_b2"
        self.render = r["threads_1"][variant]["cpu_s_per_frame"]
        self.render_variant = variant
        self.source_work = r["source_work_fast"]["cpu_s"]
        # per size: {size: (render CPU s/frame, source work CPU s)}; 512 from the side-by-side ratios
        self.by_size = {256: (self.render, self.source_work)}
        self.size_ratio_source = None
        if sizes is not None and "512" in sizes.get("sizes", {}):
            prec = "bf16" if "bf16" in variant else "fp32"
            lo, hi = sizes["sizes"]["256"], sizes["sizes"]["512"]
            if prec not in hi or prec not in lo:  # no native bf16 where it ran: the fp32 ratio (same convs)
                prec = "fp32"
            self.size_ratio_source = f"{prec} 512/256 ratio"
            self.by_size[512] = (self.render * hi[prec]["cpu_s_per_frame"] / lo[prec]["cpu_s_per_frame"],
                                 self.source_work * hi["source_work"]["cpu_s"] / lo["source_work"]["cpu_s"])
        loads = report["model_load"]
        self.load = {"renderer": loads["renderer_optimized"]["cpu_s"], "face": loads["face_recon"]["cpu_s"]
                     + loads["landmarks"]["cpu_s"], "audio": loads["audio_nets"]["cpu_s"]}
        self.preprocess = {"crop": s["preprocess_crop"]["cpu_s"], "full": s["preprocess_full"]["cpu_s"]}
        # audio stages: a + b * seconds from the 3 s and 8 s runs
        self.audio_features = _line(3, s["audio_features_3s"]["cpu_s"], 8, s["audio_features_8s"]["cpu_s"])
        self.audio2coeff = _line(3, s["audio2coeff_3s"]["cpu_s"], 8, s["audio2coeff_8s"]["cpu_s"])
        self.paste = {"crop": c["paste_back_crop"]["cpu_s_per_frame"], "full": c["paste_back_full"]["cpu_s_per_frame"]}
        self.encode = {"crop": c["encode_crop"]["cpu_s_per_video_second"], "full": c["encode_full"]["cpu_s_per_video_second"]}
        enh = report.get("enhance", {})
        gf = enh.get("gfpgan_256", {})
        self.gfpgan = gf.get("face_s_per_frame") or gf.get("compute_s_per_frame") or 0.0
        self.enhancer_load = gf.get("load_s", 0.0)
        bg = {k: v for k, v in enh.items() if k.startswith("gfpgan+realesrgan")}
        no_reuse = next((v for k, v in bg.items() if k.endswith("reuse0")), {})
        # RealESRGAN seconds per input pixel without reuse, scaled by the full-mode reuse table
        self.esrgan_s_per_px = no_reuse.get("background_s_per_frame", 0.0) / (256 * 256) if no_reuse else 0.0
        work = [row for row in enh.get("tile_work_full_mode", []) if row.get("reuse")]
        self.esrgan_reuse_work = min((row["relative_work"] for row in work), default=1.0)
        ts = r.get("thread_scaling", {})
        self.speedup_2t = ts.get("speedup_2t")
        self.load_avg = report.get("load_average_at_start", [0])[0]
        self.cores = report["machine"]["cpu_count"]


BF16_CPUS = ("Intel Xeons with AMX-BF16 (Sapphire Rapids and later), where every bf16 figure was measured; "
             "CPUs with AVX512_BF16 but no AMX (Cooper Lake, AMD Zen 4/5) run bf16 too, slower, not measured; "
             "every other CPU (AVX2-only Xeons, AMD Zen 2/3) runs fp32 and the fp32 rows apply")


def bf16_costs(report: dict, side: dict | None, sizes: dict | None) -> tuple[Costs | None, str]:
    """The bf16 stage costs and where they come from.

    Preferred: benchmarks/side_by_side.py run on a CPU with native bf16: the plain renderer's CPU time of
    stages.json times the measured bf16/plain ratio, the enhancers' fp32 costs times their bf16/fp32 ratios.
    Else the bf16 row of stages.json (an older autocast path; renderer only), else None.
    """
    summary = (side or {}).get("summary", {})
    if side and side.get("native_bf16") and "render_bf16" in summary:
        c = Costs(report, "plain_eager_b2", sizes=sizes)
        c.render *= summary["render_bf16"]["ratio"]
        c.render_variant = "side_by_side render_bf16"
        if 512 in c.by_size:
            c.by_size[512] = (c.by_size[512][0] * summary["render_bf16"]["ratio"], c.by_size[512][1])
        c.by_size[256] = (c.render, c.source_work)
        c.gfpgan *= summary.get("gfpgan_bf16", {}).get("ratio", 1.0)
        c.esrgan_s_per_px *= summary.get("realesrgan_bf16", {}).get("ratio", 1.0)
        return c, f"benchmarks/results/side_by_side.json ({side.get('cpu')}): renderer and both enhancers"
    if "optimized_bf16_b2" in report["render"]["threads_1"]:
        why = "the side-by-side run had no native bf16" if side else "no side_by_side.json"
        return (Costs(report, "optimized_bf16_b2", sizes=sizes),
                f"stages.json's autocast bf16 renderer (enhancers fp32; {why})")
    return None, "no bf16 measurement"


def _line(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
    b = max(0.0, (y1 - y0) / (x1 - x0))
    return max(0.0, y0 - b * x0), b


class Model:
    def __init__(self, costs: Costs, a: Assumptions | None = None, p: Prices | None = None,
                 stack: Stack | None = None) -> None:
        self.c, self.a, self.p = costs, a or Assumptions(), p or PRICES
        # sizes: the deployed defaults of functions/contract.py unless a what-if row passes others
        self.stack = stack or deployed_stack(self.a.map_concurrency)
        self.serial = self.a.serial_fraction
        self.serial_source = "assumed"
        sp = costs.speedup_2t
        # trust the measured 1->2 thread speedup only on a machine that was not oversubscribed
        if sp and 1.0 < sp <= 2.0 and costs.load_avg < costs.cores - 0.5:
            self.serial, self.serial_source = max(0.0, 2 / sp - 1), "measured"

    def speedup(self, vcpu: float) -> float:
        if vcpu <= 1:
            return vcpu * self.a.vcpu_speed
        return self.a.vcpu_speed / (self.serial + (1 - self.serial) / vcpu)

    def lambda_vcpu(self, stage: str) -> float:
        return self.stack.lambda_vcpu(stage)

    def on_lambda(self, fn: str, cpu_s: float) -> float:
        return cpu_s / self.speedup(self.lambda_vcpu(fn))

    def cold(self, family: str, cold: bool) -> float:
        if not cold:
            return 0.0
        return self.a.cold_start_s + self.a.weights_mb[family] / self.a.weights_read_mb_s + self.c.load[family]

    def job(self, w: Workload, cold: bool = False, concurrency: int | None = None, chunk_frames: int | None = None,
            render_s_per_frame: float | None = None) -> dict:
        """One job through the flow of issue #14: render waves of the Distributed Map (each chunk pastes back
        and encodes its own H.264 segment unless an enhancer runs), enhancement ranges as Fargate tasks side
        by side, and a Lambda Finalize that concatenates the segments without re-encoding the video."""
        a, c = self.a, self.c
        conc = concurrency or a.map_concurrency
        stack = replace(self.stack, render_concurrency=conc)
        frames = w.frames
        if w.size not in c.by_size:
            raise ValueError(f"no render cost for {w.size} px: pass --sizes (benchmarks/render_sizes.py)")
        spf, source_work = c.by_size[w.size]
        spf = spf if render_s_per_frame is None else render_s_per_frame
        params = JobParams(size=w.size, still=w.still, preprocess=w.preprocess, enhancer=w.enhancer,
                           chunk_frames=chunk_frames)
        plan = make_plan(frames, params, conc, stack.fargate_vcpu, stack.range_seconds)  # PlanChunks' own plan
        ranges = plan.ranges
        k, chunks = plan.chunk_frames, len(plan.chunks)
        waves = math.ceil(chunks / conc)
        mode = "full" if w.full else "crop"
        encode_mode = "full" if w.size >= 512 or w.full else mode  # output frames at the photo's size
        frame_bytes = a.frame_bytes_256 * (w.size / 256) ** 2
        paste = c.paste[mode] * (a.photo_px / (512 * 512) if w.full else 1)  # CPU s per frame
        t: dict[str, float] = {}
        t["validate"] = a.validate_s + (a.light_cold_start_s if cold else 0)
        pre = self.on_lambda("preprocess", c.preprocess[mode]) + self.cold("face", cold)
        af = self.on_lambda("audio_features", c.audio_features[0] + c.audio_features[1] * w.seconds) \
            + (a.cold_start_s if cold else 0)
        t["preprocess|audio_features"] = max(pre, af)
        t["audio2coeff"] = self.on_lambda("audio2coeff", c.audio2coeff[0] + c.audio2coeff[1] * w.seconds) \
            + self.cold("audio", cold)
        t["plan_chunks"] = a.light_s + (a.light_cold_start_s if cold else 0)
        # a chunk: render, then (no enhancer) paste-back + its H.264 segment on the same Lambda
        def chunk_s(n: int) -> float:
            segment_cpu = 0.0 if w.enhancer else n * paste + n / 25 * c.encode[encode_mode]
            out_bytes = n * frame_bytes if w.enhancer else n / 25 * a.video_kbit_s * 1000 / 8
            return (self.on_lambda("render_chunk", source_work + n * spf + segment_cpu)
                    + 4 * a.s3_latency_s + out_bytes / (a.s3_mb_s * 1e6))

        per_chunk = chunk_s(k)  # a full chunk; the last one may be shorter
        t["render_map"] = a.map_run_start_s + per_chunk + self.cold("renderer", cold) + (waves - 1) * per_chunk
        range_s = []
        if ranges:  # one Fargate task per range, all side by side
            vcpu = stack.fargate_vcpu
            par = vcpu * a.enhance_parallel_efficiency * a.vcpu_speed
            px = a.photo_px if w.full else 256 * 256
            enh = c.gfpgan + c.esrgan_s_per_px * px * (c.esrgan_reuse_work if w.full else 1)
            load = a.weights_mb["enhancers"] / a.weights_read_mb_s + c.enhancer_load
            for r in ranges:
                n = r["end"] - r["start"]
                read = n * frame_bytes / (a.s3_mb_s * 1e6) + math.ceil(n / k) * a.s3_latency_s
                encode = n / 25 * c.encode[encode_mode] * 4 / self.speedup(vcpu)  # 2x the frame size
                range_s.append(a.fargate_start_s + load + read + n * (paste + enh) / par + encode)
            t["enhance_ranges (fargate)"] = a.map_run_start_s + max(range_s)
        # Finalize: read the segments, concat without re-encoding, one AAC track, preview, write
        video_bytes = w.seconds * a.video_kbit_s * 1000 / 8 * (4 if w.enhancer else 1)
        segments = len(ranges) or chunks
        t["finalize (lambda, concat)"] = (2 * video_bytes / (a.s3_mb_s * 1e6) + segments * a.s3_latency_s
                                          + a.concat_s + w.seconds * a.aac_s_per_second
                                          + (a.cold_start_s if cold else 0))
        t["check_result"] = a.light_s
        items = chunks + len(ranges)
        transitions = pricing.MAIN_TRANSITIONS + pricing.TRANSITIONS_PER_ITEM * items
        t["step_functions"] = pricing.MAIN_TRANSITIONS * a.transition_latency_s  # the Map items run side by side
        wall = sum(t.values())

        use = Usage(transitions=transitions)
        for stage, s in (("validate_job", t["validate"]), ("preprocess", pre), ("audio_features", af),
                         ("audio2coeff", t["audio2coeff"]), ("plan_chunks", t["plan_chunks"]),
                         ("finalize", t["finalize (lambda, concat)"]), ("check_result", a.light_s)):
            use.add_lambda(stage, s)
        render_s = sum(chunk_s(ch["end"] - ch["start"]) for ch in plan.chunks) + min(chunks, conc) * self.cold("renderer", cold)
        use.add_lambda("render_chunk", render_s, chunks)
        use.fargate_task_s = sum(range_s)
        use.s3_gets = 12 + 4 * chunks + (chunks + 3 * len(ranges) if ranges else 0) + segments
        use.s3_puts = 12 + 2 * items + segments
        usd = bill(use, stack, self.p)
        cost = {"lambda": usd["lambda"], "render_share_of_lambda": stack.lambda_mb["render_chunk"] / 1024 * render_s
                * self.p.lambda_gb_s, "fargate": usd["fargate"], "step_functions": usd["step_functions"],
                "s3_requests": usd["s3_requests"]}
        goal = GOALS_S.get(w.name)
        return {"workload": w.name, "size": w.size, "render_cpu_s_per_frame": spf, "frames": frames,
                "concurrency": conc, "chunk_frames": k, "chunks": chunks, "waves": waves, "ranges": len(ranges),
                "range_frames": max((r["end"] - r["start"] for r in ranges), default=0),
                "finalize": "lambda (concat)", "cold": cold, "wall_s": wall, "stages_s": t, "cost_usd": cost,
                "total_usd": usd["total"], "seed_wall_s": w.seed_wall_s, "goal_wall_s": goal,
                "meets_goal": None if goal is None else wall <= goal}

    def local(self, frames: int, cores: int, chunk_frames: int, spf: float) -> dict:
        """``sadtalker generate`` on this machine: stages in-process on ``cores`` threads, render workers = cores
        x 1 thread (layers/sadtalker/local/workers.py), Finalize on Lambda's code path in-process."""
        c = self.c
        seconds = frames / 25
        sp = self.speedup(cores)
        chunks = math.ceil(frames / chunk_frames)
        waves = math.ceil(chunks / cores)
        serial_cpu = (c.preprocess["crop"] + c.audio_features[0] + c.audio_features[1] * seconds
                      + c.audio2coeff[0] + c.audio2coeff[1] * seconds + c.load["face"] + c.load["audio"])
        per_chunk = c.source_work + chunk_frames * spf
        worker_first = c.load["renderer"]
        finalize_cpu = frames * c.paste["crop"] + seconds * c.encode["crop"]
        wall = serial_cpu / sp + worker_first + waves * per_chunk + finalize_cpu
        cpu = serial_cpu + cores * worker_first + chunks * c.source_work + frames * spf + finalize_cpu
        return {"frames": frames, "chunks": chunks, "waves": waves, "predicted_wall_s_idle": wall,
                "predicted_cpu_s": cpu, "render_s_per_frame": spf}


def parse_time_log(text: str) -> dict:
    """/usr/bin/time -v output (+ the generate log): CPU and wall seconds of a local run."""
    import re

    def num(label: str) -> float:
        return float(re.search(rf"{label}: ([0-9.]+)", text).group(1))

    parts = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)", text).group(1).split(":")
    wall = sum(float(v) * 60**i for i, v in enumerate(reversed(parts)))
    return {"cpu_s": num("User time \\(seconds\\)") + num("System time \\(seconds\\)"), "wall_s": wall,
            "cpu_share": num("Percent of CPU this job got") / 100}


def local_check(report: dict, log_text: str, variant: str, chunk_frames: int, frames: int = 75) -> dict:
    model = Model(Costs(report, variant))
    cores = report["machine"]["cpu_count"]
    pred = model.local(frames, cores, chunk_frames, model.c.render)
    got = parse_time_log(log_text)
    # a contended run gets less than `cores` CPUs: its wall time is the CPU time at the share it got
    pred["predicted_wall_s_at_measured_share"] = pred["predicted_cpu_s"] / got["cpu_share"]
    return {"variant": variant, "chunk_frames": chunk_frames, **pred, "measured": got,
            "cpu_ratio_predicted_over_measured": pred["predicted_cpu_s"] / got["cpu_s"],
            "wall_ratio_at_measured_share": pred["predicted_wall_s_at_measured_share"] / got["wall_s"]}


def growth_table(model: Model, lengths=(3, 8, 25, 60, 120, 300, 600), concurrency: int | None = None) -> list[dict]:
    rows = []
    for secs in lengths:
        r = model.job(Workload(f"{secs} s", secs), concurrency=concurrency)
        rows.append({"seconds": secs, "frames": r["frames"], "chunk_frames": r["chunk_frames"], "chunks": r["chunks"],
                     "waves": r["waves"], "wall_s": r["wall_s"], "render_map_s": r["stages_s"]["render_map"],
                     "total_usd": r["total_usd"]})
    return rows


def concurrency_choices(model: Model) -> list[dict]:
    """The goal workloads at each RenderConcurrency: what the recommended default trades."""
    rows = []
    for conc in CONCURRENCY_CHOICES:
        jobs = [model.job(w, concurrency=conc) for w in SEED_WORKLOADS if w.name in GOALS_S]
        rows.append({"concurrency": conc, "jobs": {j["workload"]: {"wall_s": round(j["wall_s"], 1),
                                                                   "total_usd": round(j["total_usd"], 4),
                                                                   "meets_goal": j["meets_goal"]} for j in jobs},
                     "goals_met": sum(bool(j["meets_goal"]) for j in jobs), "peak_render_lambdas": conc})
    return rows


def recommended_concurrency(choices: list[dict]) -> int:
    """The smallest concurrency that meets as many goals as any: more only adds Lambdas in flight."""
    best = max(c["goals_met"] for c in choices)
    return min(c["concurrency"] for c in choices if c["goals_met"] == best)


def what_ifs(model: Model) -> list[dict]:
    """Goal workloads under changes the default stack does not make: what each goal would need."""
    big = Model(model.c, model.a, model.p, replace(model.stack, fargate_vcpu=16, fargate_gb=32))
    short = Model(model.c, model.a, model.p, replace(model.stack, fargate_vcpu=16, fargate_gb=32, range_seconds=30))
    by_name = {w.name: w for w in SEED_WORKLOADS}
    rows = []
    for label, m, name, kw in (
            ("chunk_frames=8 (below PlanChunks' MIN_CHUNK_FRAMES of 16)", model, "8 s, defaults", {"chunk_frames": 8}),
            ("16 vCPU / 32 GB enhancement tasks", big, "8 s, still, gfpgan, full", {}),
            ("16 vCPU / 32 GB tasks, ranges of ~30 s (SADTALKER_ENHANCE_RANGE_SECONDS=30)", short,
             "8 s, still, gfpgan, full", {}),
            ("16 vCPU / 32 GB enhancement tasks", big, "25 s, still=False, gfpgan, full", {}),
            ("16 vCPU / 32 GB enhancement tasks", big, "300 s, still=False, gfpgan, full", {})):
        j = m.job(by_name[name], **kw)
        rows.append({"change": label, "workload": name, "wall_s": j["wall_s"], "total_usd": j["total_usd"],
                     "ranges": j["ranges"], "chunks": j["chunks"], "meets_goal": j["meets_goal"]})
    return rows


def _fmt_s(s: float) -> str:
    return f"{int(s // 60)}m{int(round(s % 60)):02d}s" if s >= 60 else f"{s:.0f}s"


def markdown_512(models: dict[str, Model]) -> str:
    """512 px rows: one line per (workload, precision) that has a measured 512 cost."""
    lines = ["| workload | precision | render CPU s/frame (1 thread) | frames | chunks x frames | projected warm | "
             "cold | $ per job (warm) | of which render |", "|---|---|---|---|---|---|---|---|---|"]
    for prec, model in models.items():
        for w in SIZE_512_WORKLOADS:
            warm, cold = model.job(w), model.job(w, cold=True)
            lines.append(f"| {w.name} | {prec} | {warm['render_cpu_s_per_frame']:.1f} | {w.frames} | "
                         f"{warm['chunks']} x {warm['chunk_frames']} | {_fmt_s(warm['wall_s'])} | {_fmt_s(cold['wall_s'])} | "
                         f"${warm['total_usd']:.3f} | ${warm['cost_usd']['render_share_of_lambda']:.3f} |")
    return "\n".join(lines)


def markdown(model: Model, plain: Model | None) -> str:
    conc = model.a.map_concurrency
    lines = [f"RenderConcurrency {conc} (recommended: the smallest that meets the most goals), 4 vCPU enhancement "
             f"tasks, Fargate start {model.a.fargate_start_s:.0f} s.", "",
             "| workload | frames | chunks x frames | ranges x frames | seed (Flyte) | projected warm | cold | "
             "goal (warm) | $ per job (warm) | of which render | of which Fargate |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in SEED_WORKLOADS:
        warm, cold = model.job(w), model.job(w, cold=True)
        goal = "" if warm["goal_wall_s"] is None else \
            f"{_fmt_s(warm['goal_wall_s'])} {'met' if warm['meets_goal'] else '**missed**'}"
        lines.append(f"| {w.name} | {w.frames} | {warm['chunks']} x {warm['chunk_frames']} | "
                     f"{warm['ranges']} x {warm['range_frames']} | {_fmt_s(w.seed_wall_s) if w.seed_wall_s else '-'} | "
                     f"{_fmt_s(warm['wall_s'])} | {_fmt_s(cold['wall_s'])} | {goal} | ${warm['total_usd']:.3f} | "
                     f"${warm['cost_usd']['render_share_of_lambda']:.3f} | ${warm['cost_usd']['fargate']:.3f} |")
    out = "\n".join(lines)
    out += "\n\nRenderConcurrency against the goal workloads (warm wall / $):\n\n| concurrency | " + " | ".join(
        GOALS_S) + " |\n|---|" + "---|" * len(GOALS_S) + "\n"
    for c in concurrency_choices(model):
        out += f"| {c['concurrency']} | " + " | ".join(
            f"{_fmt_s(c['jobs'][n]['wall_s'])} / ${c['jobs'][n]['total_usd']:.3f}" for n in GOALS_S) + " |\n"
    out += "\nWhat the missed goals would need:\n\n" + "\n".join(
        f"- {r['workload']}, {r['change']}: {_fmt_s(r['wall_s'])} / ${r['total_usd']:.3f} "
        f"({r['chunks']} chunks, {r['ranges']} ranges; goal {'met' if r['meets_goal'] else 'missed'})"
        for r in what_ifs(model))
    if plain is not None:
        out += "\n\nThe same with the plain eager renderer (before the speed-ups): " + ", ".join(
            f"{w.name}: {_fmt_s(plain.job(w)['wall_s'])} / ${plain.job(w)['total_usd']:.3f}" for w in SEED_WORKLOADS)
    out += "\n\nWall time against clip length (defaults, warm):\n\n| clip | frames | chunks x frames | waves | " \
           "render Map | job wall | $ per job |\n|---|---|---|---|---|---|---|\n"
    for conc in (model.a.map_concurrency, 400):
        for r in growth_table(model, concurrency=conc):
            out += (f"| {r['seconds']} s (concurrency {conc}) | {r['frames']} | {r['chunks']} x {r['chunk_frames']} | "
                    f"{r['waves']} | {_fmt_s(r['render_map_s'])} | {_fmt_s(r['wall_s'])} | ${r['total_usd']:.3f} |\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default=str(ROOT / "benchmarks" / "results" / "stages.json"))
    ap.add_argument("--markdown", action="store_true", help="print the tables for docs/performance.md")
    ap.add_argument("--sizes", default=str(ROOT / "benchmarks" / "results" / "render_sizes.json"),
                    help="benchmarks/render_sizes.py output (512 px rows; skipped when the file is absent)")
    ap.add_argument("--side-by-side", default=str(ROOT / "benchmarks" / "results" / "side_by_side.json"),
                    help="benchmarks/side_by_side.py output (bf16 rows, when it ran on a CPU with native bf16)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "projection.json"))
    ap.add_argument("--local-log", help="/usr/bin/time -v output of a `sadtalker generate` run of the 3 s example")
    ap.add_argument("--local-variant", default="optimized_b2", help="render variant that run used")
    ap.add_argument("--local-chunk-frames", type=int, default=16)
    args = ap.parse_args(argv)
    report = json.loads(Path(args.stages).read_text())
    if args.local_log:
        check = local_check(report, Path(args.local_log).read_text(), args.local_variant, args.local_chunk_frames)
        print(json.dumps(check, indent=2))
        return 0
    sizes = json.loads(Path(args.sizes).read_text()) if Path(args.sizes).exists() else None
    choices = concurrency_choices(Model(Costs(report, sizes=sizes)))
    a = Assumptions(map_concurrency=recommended_concurrency(choices))  # every row at the recommended default
    model = Model(Costs(report, sizes=sizes), a)
    plain = Model(Costs(report, "plain_eager_b2"), a)
    result = {"assumptions": asdict(model.a), "prices": asdict(model.p), "stack": model.stack.to_dict(),
              "recommended_concurrency": model.a.map_concurrency, "goals_wall_s": GOALS_S,
              "goal_8s_defaults_usd": GOAL_8S_USD, "serial_fraction": model.serial,
              "serial_fraction_source": model.serial_source, "render_variant": model.c.render_variant,
              "render_cpu_s_per_frame": model.c.render, "lambda_render_s_per_frame": model.on_lambda("render_chunk", model.c.render),
              "workloads": [model.job(w) for w in SEED_WORKLOADS] + [model.job(w, cold=True) for w in SEED_WORKLOADS],
              "plain_eager": [plain.job(w) for w in SEED_WORKLOADS],
              "growth": {str(c): growth_table(model, concurrency=c) for c in (model.a.map_concurrency, 400)},
              "concurrency_choices": choices, "what_ifs": what_ifs(model)}
    by_precision = {"fp32": model}
    side = json.loads(Path(args.side_by_side).read_text()) if Path(args.side_by_side).exists() else None
    bf_costs, bf_source = bf16_costs(report, side, sizes)
    bf = None
    if bf_costs is not None:
        bf = Model(bf_costs, a)
        result["bf16"] = [bf.job(w) for w in SEED_WORKLOADS]
        result["bf16_source"], result["bf16_holds_on"] = bf_source, BF16_CPUS
        by_precision["bf16"] = bf
    by_precision = {p: m for p, m in by_precision.items() if 512 in m.c.by_size}
    if by_precision:
        result["size_512"] = {
            "source": "256 px figures x the 512/256 CPU ratio of benchmarks/results/render_sizes.json",
            "ratios": sizes["ratios"],
            "ratio_used": {p: m.c.size_ratio_source for p, m in by_precision.items()},
            **{p: [m.job(w) for w in SIZE_512_WORKLOADS] + [m.job(w, cold=True) for w in SIZE_512_WORKLOADS]
               for p, m in by_precision.items()}}
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    if args.markdown:
        print(markdown(model, plain))
        if bf is not None:
            print(f"\nWith `precision=bf16` ({bf_source}; {bf.c.render:.2f} CPU s/frame): " + ", ".join(
                f"{w.name}: {_fmt_s(bf.job(w)['wall_s'])} / ${bf.job(w)['total_usd']:.3f}" for w in SEED_WORKLOADS)
                + f". These hold on: {BF16_CPUS}.")
        if by_precision:
            print("\n512 px (size=512):\n\n" + markdown_512(by_precision))
    else:
        for r in result["workloads"]:
            print(f"{r['workload']:34s} {'cold' if r['cold'] else 'warm'} wall {_fmt_s(r['wall_s']):>7s} "
                  f"(seed {_fmt_s(r['seed_wall_s'])}) ${r['total_usd']:.3f} chunks {r['chunks']}x{r['chunk_frames']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

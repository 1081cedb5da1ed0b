"""`sadtalker generate`: one talking-head video on this machine, through the real state machine.

The inputs are copied into the local runtime's (moto) bucket, the job runs through
statemachine/sadtalker.asl.json with the real handlers, and the results are copied out:
``OUTPUT`` (the MP4), ``<stem>.result.json`` and ``<stem>.preview.jpg`` beside it. A failed job prints
one sentence (the named error from error.json), exits non-zero and leaves no output file behind.

Weights (``--weights``): a directory; ``auto`` (the model store: $SADTALKER_WEIGHTS or
~/.cache/sadtalker/weights; missing files are downloaded; offline, it falls back to synthetic weights
and says so loudly); ``synthetic`` (pipeline check). Videos made with synthetic weights are labelled
(console banner, result.json ``SYNTHETIC: true``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cli import add_job_flags, check_media_args, param_overrides, reference_files
from ..errors import SadTalkerError, UsageError, WeightsMissing, error_from_record
from ..jobs import JobKeys, new_job_id
from ..params import JobParams

SYNTHETIC_BANNER = (
    "SYNTHETIC WEIGHTS: this run uses pseudo-random checkpoints. The video checks the pipeline end to end; "
    "it is NOT a talking-head animation."
)


# --- weights ----------------------------------------------------------------------------------------------
def synthetic_store(profile: str, params: JobParams) -> Path:
    """Synthetic weights for ``profile`` (cached under ~/.cache/sadtalker/synthetic-<profile>)."""
    from ..weights.store import PROFILE_FILE, write_synthetic

    root = Path(os.environ.get("SADTALKER_SYNTHETIC_DIR") or Path.home() / ".cache" / "sadtalker")
    final = root / f"synthetic-{profile}-{params.size}{'-enh' if params.enhancer else ''}"
    if (final / "SYNTHETIC").exists() and (profile == "full" or (final / PROFILE_FILE).exists()):
        return final
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if profile == "reduced":
        from ..render.reduced import write_reduced_weights

        write_reduced_weights(tmp, sizes=(params.size,))
        if params.enhancer:
            from ..enhance.reduced import write_reduced_enhancers

            write_reduced_enhancers(tmp)
    else:
        write_synthetic(tmp, layouts=(f"safetensors_{params.size}",), enhancers=bool(params.enhancer))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def resolve_weights(choice: str, params: JobParams, profile: str, say) -> Path:
    from ..weights.store import ModelStore, download, requirements

    reqs = requirements(size=params.size, preprocess=params.preprocess, enhancer=params.enhancer,
                        background_enhancer=params.background_enhancer if params.enhancer else "")
    if choice == "synthetic":
        return synthetic_store(profile, params)
    if choice != "auto":
        store = ModelStore(Path(choice))
        if not store.root.is_dir():
            raise WeightsMissing(f"the weights directory {store.root} does not exist; "
                                 f"run `sadtalker weights download --dir {store.root}`")
        store.require(reqs)
        return store.root
    store = ModelStore.open()
    missing = store.missing(reqs)
    if not missing:
        return store.root
    names = [r.file for r in missing]
    say(f"weights: {', '.join(names)} missing in {store.root}; trying to download them ...")
    try:
        download(names, store.root)
        store.require(reqs)
        return store.root
    except SadTalkerError as exc:
        fallback = synthetic_store(profile, params)
        say("")
        say("!" * 100)
        say(f"!! cannot get the real weights: {exc}")
        say(f"!! FALLING BACK TO SYNTHETIC WEIGHTS ({fallback}).")
        say("!! The video will NOT be an animation. To fix: `sadtalker weights download` (online), or copy the")
        say(f"!! official files into {store.root}, or pass --weights DIR.")
        say("!" * 100)
        say("")
        return fallback


# --- job ------------------------------------------------------------------------------------------------------
def build_params(args: argparse.Namespace) -> JobParams:
    source = Path(args.params) if args.params else None
    if source is not None and not source.is_file():
        raise UsageError(f"the params file {source} does not exist")
    return JobParams.load(source, **param_overrides(args))


def rendered_frames(keys: list[str]) -> int:
    """Frames rendered so far, from the names of the chunks / segments stored (``<start>-<end>``): the
    render children's events are not in the job's history (Distributed Map child executions)."""
    spans = {m.groups() for m in (re.search(r"/(\d{6})-(\d{6})\.(?:npz|ts)$", k) for k in keys) if m}
    return sum(int(e) - int(s) for s, e in spans)


class Progress:
    """Stage from the execution history, frames rendered from the stored chunks, ETA (rich when on a
    terminal)."""

    def __init__(self, enabled: bool, frames_done: Callable[[], int] = lambda: 0):
        self.enabled = enabled
        self._frames_done = frames_done
        self.stage = "starting"
        self.frames_total = 0
        self.frames_done = 0
        self.t_render: float | None = None
        self._rich = None
        if enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                self._rich = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} frames"),
                                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
                                      console=_console())
                self._task = self._rich.add_task("starting", total=None)
            except ImportError:
                self._rich = None

    def __enter__(self):
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc):
        if self._rich is not None:
            self._rich.stop()

    def on_event(self, e: dict) -> None:
        t = e["type"]
        if t.endswith("StateEntered"):
            self.stage = e["stateEnteredEventDetails"]["name"]
        elif t == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "PlanChunks":
            out = json.loads(e["stateExitedEventDetails"].get("output") or "{}")
            self.frames_total = int(out.get("coeffs", {}).get("num_frames", 0))
            self.t_render = time.monotonic()
        self.tick()

    def tick(self) -> None:
        """Called on every poll: the render children write no events into the job's history."""
        if self.stage == "RenderChunks":
            self.frames_done = min(self.frames_total, self._frames_done())
        self._update()

    def _update(self) -> None:
        desc = f"{self.stage:28s}"
        if self._rich is not None:
            self._rich.update(self._task, description=desc, total=self.frames_total or None,
                              completed=self.frames_done)
        elif self.enabled:
            eta = ""
            if self.t_render and self.frames_done:
                rate = (time.monotonic() - self.t_render) / self.frames_done
                eta = f" ETA {rate * (self.frames_total - self.frames_done):.0f}s"
            print(f"\r{desc} {self.frames_done}/{self.frames_total} frames{eta}   ", end="", file=sys.stderr, flush=True)


def upload_job(s3, bucket: str, job_id: str, image: Path, audio: Path | None, refs: dict[str, Path],
               params: dict[str, Any]) -> dict[str, Any]:
    """Copy the inputs to inbox/<job>/ under names the S3 drop recognises (image.<ext> or source.<video ext>,
    speech.<ext>, ref_pose.<ext>, ref_eyeblink.<ext>: sadtalker.drop) and return the StartExecution input."""
    from ..drop import SOURCE_VIDEO, is_video, video_key

    job = JobKeys(job_id)
    for kind, path in refs.items():  # before the media: the last upload completes a drop folder
        params[kind] = video_key(job, kind, path)
        s3.put_object(Bucket=bucket, Key=params[kind], Body=path.read_bytes())
    image_key = video_key(job, SOURCE_VIDEO, image) if is_video(image) else job.inbox + "image" + image.suffix.lower()
    s3.put_object(Bucket=bucket, Key=image_key, Body=image.read_bytes())
    job_input: dict[str, Any] = {"image": f"s3://{bucket}/{image_key}", "params": params}
    if audio is not None:
        audio_key = job.inbox + "speech" + audio.suffix.lower()
        s3.put_object(Bucket=bucket, Key=audio_key, Body=audio.read_bytes())
        job_input["audio"] = f"s3://{bucket}/{audio_key}"
    return job_input


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _raise_job_error(rt, job_id: str, desc: dict) -> None:
    try:
        rec = json.loads(rt.get(JobKeys(job_id).error))
    except Exception:
        rec = {"error": desc.get("error") or "FinalizeFailed", "message": desc.get("cause") or "the job failed"}
    raise error_from_record(rec, suffix=f" (in {rec['state']})" if rec.get("state") else "")


def _print_history(rt, arn: str) -> None:
    events = rt.history(arn)
    t0 = events[0]["timestamp"] if events else None
    for e in events:
        det = next((v for k, v in e.items() if k.endswith("EventDetails")), {}) or {}
        extra = det.get("name") or det.get("error") or ""
        if "index" in det:
            extra += f" #{det['index']}"
        print(f"{(e['timestamp'] - t0).total_seconds():9.3f}s  {e['id']:4d}  {e['type']:32s} {extra}")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def generate(args: argparse.Namespace) -> int:
    from .runtime import LocalRuntime

    check_media_args(args)
    image, output = Path(args.image), Path(args.output)
    audio = Path(args.audio) if args.audio else None
    refs = reference_files(args)
    if output.suffix.lower() != ".mp4":
        raise UsageError(f"the output {output} must end in .mp4")
    params = build_params(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    profile = args.profile or os.environ.get("SADTALKER_PROFILE") or "full"
    weights = resolve_weights(args.weights, params, profile, _say)
    from ..weights.store import ModelStore

    store = ModelStore(weights)
    if store.synthetic:
        _say("=" * 100)
        _say(SYNTHETIC_BANNER)
        _say(f"weights: {store.root} (profile {store.profile})")
        _say("=" * 100)
    job_id = args.job_id or new_job_id(image)
    t0 = time.monotonic()
    show = not args.quiet
    with LocalRuntime(store.root, workers=args.workers, max_concurrency=args.concurrency) as rt:
        speech = audio.name if audio else f"{params.length_of_audio} s idle"
        _say(f"job {job_id}: {image.name} + {speech} -> {output}  "
             f"({rt.workers or 1} render worker(s) x {rt.threads} thread(s))")
        arn = rt.start_execution(job_id, upload_job(rt.client("s3"), rt.bucket, job_id, image, audio, refs,
                                                     json.loads(params.to_json())))
        job = JobKeys(job_id)
        with Progress(show, lambda: rendered_frames(rt.keys(job.chunks) + rt.keys(job.segments))) as progress:
            desc = rt.follow(arn, progress.on_event, poll=0.25, on_tick=progress.tick)
        if args.history:
            _print_history(rt, arn)
        if args.keep_work:
            keep = Path(args.keep_work)
            for key in rt.keys(""):
                dest = keep / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(rt.get(key))
            _say(f"work files kept in {keep}")
        if desc["status"] != "SUCCEEDED":
            _raise_job_error(rt, job_id, desc)
        job = JobKeys(job_id)
        video, result, preview = rt.get(job.video), json.loads(rt.get(job.result)), rt.get(job.preview)
    result_path = output.with_name(output.stem + ".result.json")
    _write_atomic(output.with_name(output.stem + ".preview.jpg"), preview)
    _write_atomic(result_path, json.dumps(result, indent=2).encode())
    _write_atomic(output, video)  # the video last: its presence means the run succeeded
    _summary(result, output, result_path, time.monotonic() - t0)
    return 0


def _summary(result: dict[str, Any], output: Path, result_path: Path, wall: float) -> None:
    t = result.get("timings", {})
    print(f"done: {output} ({result['frames']} frames, {result['duration_s']} s) in {wall:.1f} s")
    rows = [(k, v) for k, v in t.items() if isinstance(v, (int, float)) and k not in ("render_chunk_count",)]
    if isinstance(t.get("finalize"), dict):
        rows.append(("finalize", t["finalize"].get("total_s")))
    for k, v in rows:
        print(f"  {k:28s} {v:10.3f}")
    print(f"  result: {result_path}")
    if result.get("SYNTHETIC"):
        print("  SYNTHETIC weights: pipeline check, not an animation")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="make a talking-head video on this machine (local state machine)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_flags(p)
    p.add_argument("-o", "--output", default="out/sadtalker.mp4", help="output MP4 (default: out/sadtalker.mp4)")
    p.add_argument("--weights", default="auto", help="DIR | auto | synthetic (default auto)")
    p.add_argument("--workers", type=int, default=None, help="render worker processes (default: the cores; 0 = in-process)")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="render chunks in flight: the Map's MaxConcurrency, as the stack's RenderConcurrency "
                        "parameter sets it on AWS; automatic chunk sizing plans for it (default: the workers)")
    p.add_argument("--keep-work", metavar="DIR", help="copy every object of the job (inbox, work, outputs) into DIR")
    p.add_argument("--history", action="store_true", help="print the execution history")
    p.add_argument("--job-id", help=argparse.SUPPRESS)
    p.add_argument("--profile", choices=["full", "reduced"], help=argparse.SUPPRESS)  # reduced: tests only
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=generate)

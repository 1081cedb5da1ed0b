"""The `sadtalker` command line.

Every subcommand has --help. A named error (or any failure) prints one line and exits non-zero;
--verbose prints the traceback too. Subcommands of the local runtime and of the AWS
client are registered from their own modules (see ``_registrars``).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SadTalkerError, UsageError


# --- weights ----------------------------------------------------------------------------------------
def _weights_synthetic(args: argparse.Namespace) -> int:
    from .weights import SADTALKER_LAYOUTS, write_synthetic

    layouts = tuple(args.layout) if args.layout else ("safetensors_256",)
    for lay in layouts:
        if lay not in SADTALKER_LAYOUTS:
            raise UsageError(f"unknown layout {lay!r}; choose from {', '.join(SADTALKER_LAYOUTS)}")
    paths = write_synthetic(Path(args.dir), layouts=layouts, enhancers=not args.no_enhancers)
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    print("SYNTHETIC weights: pseudo-random values for pipeline checks; videos made with them are not animations.")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    from .weights import ModelStore, requirements

    store = ModelStore.open(args.dir)
    print(f"model store: {store.root}{'  [SYNTHETIC]' if store.synthetic else ''}  profile={store.profile}")
    files = store.files()
    if not files:
        print("  (empty or missing)")
    for p in files:
        print(f"  {p.name:40s} {p.stat().st_size / 1e6:10.1f} MB")
    print("what each job setting needs:")
    settings = [
        ("size=256 preprocess=crop/extcrop/resize", dict(size=256, preprocess="crop")),
        ("size=256 preprocess=full/extfull", dict(size=256, preprocess="full")),
        ("size=512 preprocess=crop", dict(size=512, preprocess="crop")),
        ("size=512 preprocess=full", dict(size=512, preprocess="full")),
        ("enhancer=gfpgan", dict(enhancer="gfpgan")),
        ("enhancer=gfpgan background_enhancer=realesrgan", dict(enhancer="gfpgan", background_enhancer="realesrgan")),
    ]
    base = {r.file for r in requirements()}
    for label, kw in settings:
        reqs = requirements(**kw)
        if "enhancer" in kw:  # the enhancer rows list only what the enhancer adds
            reqs = [r for r in reqs if r.file not in base]
        gone = store.missing(reqs)
        state = "ok" if not gone else "missing " + ", ".join(r.file for r in gone)
        print(f"  {label:50s} {state}")
    return 0


def _weights_download(args: argparse.Namespace) -> int:
    from .weights.store import RELEASE_URLS, download, resolve_dir

    names = args.files or [
        "SadTalker_V0.0.2_256.safetensors",
        "mapping_00229-model.pth.tar",
        "mapping_00109-model.pth.tar",
    ]
    if args.enhancers:
        names += ["GFPGANv1.4.pth", "RealESRGAN_x2plus.pth"]
    if args.face_alignment:
        names += ["s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar"]
    for n in names:
        if n not in RELEASE_URLS:
            raise UsageError(f"unknown file {n!r}; known: {', '.join(RELEASE_URLS)}")
    out = resolve_dir(args.dir)

    def progress(name: str, got: int, total: int) -> None:
        pct = f"{100 * got / total:5.1f}%" if total else ""
        print(f"\r{name}: {got / 1e6:8.1f} MB {pct}", end="", file=sys.stderr, flush=True)

    for p in download(names, out, progress=progress):
        print(f"\nverified {p}")
    return 0


# --- params ----------------------------------------------------------------------------------------
def params_markdown() -> str:
    """The README's parameter table (a test keeps the README equal to it)."""
    from .params import params_table

    lines = ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
    lines += [f"| `{n}` | `{d}` | {a} | {m} |" for n, d, a, m in params_table()]
    return "\n".join(lines)


def _params_show(args: argparse.Namespace) -> int:
    from .params import JobParams

    if args.table:
        print(params_markdown())
        return 0
    params = JobParams.load(Path(args.file)) if args.file else JobParams()
    print(json.dumps(json.loads(params.to_json()), indent=2))
    return 0


# --- job flags (generate and submit) ----------------------------------------------------------------
def param_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The JobParams values the shared job flags set (None = not given); `generate` and `submit` use it."""
    return {
        "still": args.still, "preprocess": args.preprocess, "enhancer": args.enhancer, "size": args.size,
        "pose_style": args.pose_style, "expression_scale": args.expression_scale, "batch_size": args.batch_size,
        "seed": args.seed, "input_yaw": args.input_yaw, "input_pitch": args.input_pitch,
        "input_roll": args.input_roll, "use_blink": args.blink, "length_of_audio": args.length_of_audio,
        "face_index": args.face_index,
    }


def reference_files(args: argparse.Namespace) -> dict[str, Path]:
    """--ref-pose / --ref-eyeblink: local videos, checked to exist (they are uploaded with the job)."""
    refs = {}
    for kind in ("ref_pose", "ref_eyeblink"):
        value = getattr(args, kind)
        if value:
            path = Path(value)
            if not path.is_file():
                raise UsageError(f"the --{kind.replace('_', '-')} video {path} does not exist")
            refs[kind] = path
    return refs


def check_media_args(args: argparse.Namespace) -> None:
    """The source (picture, GIF or video) must exist; the speech too, unless idle mode needs none."""
    if not Path(args.image).is_file():
        raise UsageError(f"the image {args.image} does not exist")
    if args.audio is None and args.length_of_audio is None:
        raise UsageError("give --audio (the speech), or --length-of-audio SECONDS for idle mode without speech")
    if args.audio is not None and not Path(args.audio).is_file():
        raise UsageError(f"the speech file {args.audio} does not exist")


def add_job_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by `generate` and `submit`: the source, the speech, references and JobParams values."""
    p.add_argument("--image", required=True,
                   help="source face: a photo (PNG/JPEG/WebP/BMP), an animated GIF or a video "
                        "(mp4/mov/webm/mkv/avi; its first frame with a face is used)")
    p.add_argument("--audio", help="speech (wav, mp3, m4a, flac, ...); omit it with --length-of-audio")
    p.add_argument("--params", help="params.json (flags below override its values)")
    p.add_argument("--still", action=argparse.BooleanOptionalAction, default=None, help="keep the source head pose")
    p.add_argument("--preprocess", choices=["crop", "extcrop", "resize", "full", "extfull"])
    p.add_argument("--enhancer", choices=["", "gfpgan"], help="face enhancer")
    p.add_argument("--size", type=int, choices=[256, 512])
    p.add_argument("--pose-style", type=int, help="0..45")
    p.add_argument("--expression-scale", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--ref-pose", metavar="VIDEO", help="video whose head motion the face follows")
    p.add_argument("--ref-eyeblink", metavar="VIDEO", help="video whose eye blinks the face copies")
    for axis in ("yaw", "pitch", "roll"):
        p.add_argument(f"--input-{axis}", type=int, nargs="+", metavar="DEG",
                       help=f"head {axis} in degrees (-90..90); several values are interpolated over the clip")
    p.add_argument("--blink", action=argparse.BooleanOptionalAction, default=None,
                   help="random eye blinks (use_blink; default on)")
    p.add_argument("--length-of-audio", type=float, metavar="SECONDS",
                   help="idle mode: animate this many seconds without speech (no --audio)")
    p.add_argument("--face-index", type=int, metavar="N",
                   help="which face of a group photo, numbered left to right from 0 (see `sadtalker preview-crop`)")


# --- preview-crop -----------------------------------------------------------------------------------
def _preview_crop(args: argparse.Namespace) -> int:
    from .face.image import encode_png, source_frames
    from .face.landmarks import get_landmark_backend
    from .face.preview import preview_crop
    from .params import JobParams
    from .weights.store import resolve_dir

    source = Path(args.image)
    if not source.is_file():
        raise UsageError(f"the image {source} does not exist")
    params = JobParams.load(preprocess=args.preprocess, face_index=args.face_index, landmarks=args.landmarks)
    backend = get_landmark_backend(params.landmarks, resolve_dir(args.weights))
    shown = preview_crop(source_frames(source.read_bytes(), source.name), backend, params.preprocess,
                         params.face_index, f"the source image {source.name!r}")
    out = Path(args.output or source.with_name(source.stem + ".faces.png").name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(shown.image))
    where = f" (frame {shown.frame})" if shown.frame else ""
    print(f"{len(shown.faces)} face(s) in {source.name}{where}, numbered left to right ({backend.name} landmarks):")
    for face in shown.faces:
        x1, y1, x2, y2 = (round(v) for v in face.box)
        mark = "  <- animated" if face.index == shown.chosen.index else ""
        print(f"  face_index {face.index}: box ({x1}, {y1}) - ({x2}, {y2}){mark}")
    x1, y1, x2, y2 = shown.crop_rect
    print(f"crop region ({params.preprocess}): ({x1}, {y1}) - ({x2}, {y2})")
    print(f"wrote {out}")
    return 0


def _add_preview_crop(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview-crop", help="draw every detected face (numbered for face_index) and the crop onto "
                                           "the picture")
    p.add_argument("--image", required=True, help="source: photo, animated GIF or video (first frame with a face)")
    p.add_argument("-o", "--output", help="PNG to write (default ./<image stem>.faces.png)")
    p.add_argument("--preprocess", choices=["crop", "extcrop", "resize", "full", "extfull"], default="crop")
    p.add_argument("--face-index", type=int, metavar="N", help="the face to crop (default: the largest)")
    p.add_argument("--landmarks", choices=["auto", "dlib", "face_alignment"], default="auto")
    p.add_argument("--weights", help="model store with face_alignment's files (for --landmarks auto/face_alignment)")
    p.set_defaults(func=_preview_crop)


# --- quote ------------------------------------------------------------------------------------------
def _quote(args: argparse.Namespace) -> int:
    from .audio.decode import decode_audio
    from .audio.features import frame_count
    from .local.generate import build_params
    from .pricing import PRICES, quote

    check_media_args(args)
    params = build_params(args)
    if params.length_of_audio is not None:  # idle mode: AudioFeatures makes int(seconds * 25) frames
        frames = int(params.length_of_audio * 25)
    else:  # the frames AudioFeatures will count: the decoded speech, not its header
        frames = frame_count(len(decode_audio(args.audio, params.max_audio_seconds)))
    q = quote(frames, params, _quote_stack(args.concurrency))
    if args.json:
        print(json.dumps(q.to_dict(), indent=2))
        return 0
    warm, cold = q.usd, q.usd_cold
    print(f"frames {q.frames} ({q.frames / 25:.2f} s), render chunks {q.chunks} x {q.chunk_frames} frames in "
          f"{q.waves} wave(s) at RenderConcurrency {q.stack.render_concurrency}"
          + (f", enhancement ranges {q.ranges}" if q.ranges else ""))
    print(f"wall time   warm {q.wall_s / 60:5.1f} min   cold {q.wall_cold_s / 60:5.1f} min")
    print(f"US dollars  warm ${warm['total']:.4f}   cold ${cold['total']:.4f}  (Lambda ${cold['lambda']:.4f}, "
          f"Fargate ${cold['fargate']:.4f}, Step Functions ${cold['step_functions']:.4f}, "
          f"S3 ${cold['s3_requests']:.4f})")
    cap = params.max_cost_usd
    verdict = "" if cap is None else (f"; max_cost_usd ${cap:.4f}: " + ("accepted" if q.total_usd <= cap else
                                                                          "REFUSED (CostLimitExceeded)"))
    print(f"quote (cold containers, PlanChunks' cost figures, {PRICES.region} list prices of {PRICES.date}): "
          f"${q.total_usd:.4f}{verdict}")
    return 0


def _quote_stack(concurrency: int | None):
    """The deployed stack's sizes (functions/contract.py) at the given or the stack's default concurrency."""
    from functions.quote import deployed_stack

    if concurrency is None:
        try:  # the deploy configuration lives in the repository's infra/, not in the installed package
            from infra.config import DeployConfig
        except ImportError:
            raise UsageError("give --concurrency N (the stack's RenderConcurrency): the deploy configuration "
                             "(infra/config.py) is not importable here") from None
        concurrency = DeployConfig().render_concurrency
    if concurrency < 0:
        raise UsageError(f"--concurrency must be 0 (no limit) or more, got {concurrency}")
    return deployed_stack(concurrency)


def _add_quote(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quote", help="frames, chunks, projected wall time and US dollars of a job on the deployed stack")
    add_job_flags(p)
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="the stack's RenderConcurrency (default: infra/config.py's default)")
    p.add_argument("--json", action="store_true", help="print the quote as JSON")
    p.set_defaults(func=_quote)


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="checkpoint files: synthetic, list, download")
    wsub = p.add_subparsers(dest="weights_cmd", required=True)
    s = wsub.add_parser("synthetic", help="write synthetic checkpoints (parity-kit fill) in the official layouts")
    s.add_argument("dir", help="output directory")
    s.add_argument("--layout", action="append", help="safetensors_256 (default), safetensors_512, v0.0.2_pth; repeatable")
    s.add_argument("--no-enhancers", action="store_true", help="skip GFPGANv1.4.pth and RealESRGAN_x2plus.pth")
    s.set_defaults(func=_weights_synthetic)
    s = wsub.add_parser("list", help="what a weights directory holds and what each job setting needs")
    s.add_argument("dir", nargs="?", help="weights directory (default: $SADTALKER_WEIGHTS or ~/.cache/sadtalker/weights)")
    s.set_defaults(func=_weights_list)
    s = wsub.add_parser("download", help="fetch the official files from their public release URLs")
    s.add_argument("--dir", help="weights directory (default: $SADTALKER_WEIGHTS or ~/.cache/sadtalker/weights)")
    s.add_argument("--enhancers", action="store_true", help="also GFPGANv1.4.pth and RealESRGAN_x2plus.pth")
    s.add_argument("--face-alignment", action="store_true", help="also face-alignment's detector and landmark files")
    s.add_argument("files", nargs="*", help="file names (default: the 256 bundle and both mapping files)")
    s.set_defaults(func=_weights_download)


def _add_params(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="validate a params.json and print the effective parameters")
    p.add_argument("file", nargs="?", help="params JSON file (default: print the defaults)")
    p.add_argument("--table", action="store_true", help="print the parameter table (markdown)")
    p.set_defaults(func=_params_show)


def _registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Each piece keeps its subcommands beside its own code (generate: the local runtime; submit/status:
    the AWS client); their modules import nothing heavy until a command runs."""
    from .client import add_commands as add_client_commands
    from .local.generate import add_generate

    return [_add_weights, _add_params, add_generate, add_client_commands, _add_preview_crop, _add_quote]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sadtalker", description="SadTalker talking heads, serverless or on one machine")
    parser.add_argument("--version", action="version", version=f"sadtalker-serverless {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _registrars():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"sadtalker: {exc}", file=sys.stderr)
        return 2
    except SadTalkerError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"sadtalker: {exc.name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sadtalker: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure is still one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        print(f"sadtalker: unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

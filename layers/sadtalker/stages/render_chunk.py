"""RenderChunk stage: frames [start, end) of a job's clip -> the chunk's video segment, or lossless frames.

Reads job.coeffs (``coeffs`` (T, 70)), job.face (``coeff_3dmm`` (1, 73), crop info) and job.source_image
(PNG), and renders the chunk (img_as_ubyte of the generator output). Then:

* without an enhancer: every frame is pasted back onto job.original_image (``paste_back.PasteBack``, built
  once per chunk) and the chunk is encoded as its H.264 segment ``job.segment(start, end)``
  (``video.encode_segment``): the final video is these segments, concatenated without re-encoding;
* with an enhancer: the frames are written losslessly to ``job.chunk(start, end)`` (``frames`` (N, size,
  size, 3) uint8 RGB, ``start``, ``end``) for the enhancement task of the range holding the chunk.

Either object key is deterministic and written in one put, so a retried or duplicated chunk is harmless;
bad input raises a named error before anything is written.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import InvalidChunk, InvalidCoefficients, InvalidImage, TransientError
from ..jobs import JobKeys
from ..params import JobParams
from ..render.animate import load_renderer, source_image_float, to_ubyte
from ..render.precision import effective_precision
from ..render.semantics import prepare_motion
from ..storage import Storage
from . import MODEL_LOAD_S
from .plan_chunks import FINALIZE_CPU_S_PER_FRAME, SLOWEST_HOST_FACTOR


def read_png(data: bytes, what: str) -> np.ndarray:
    """A PNG the pipeline saved, as RGB uint8 (PIL, like the original's ``Image.open``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidImage(f"the {what} cannot be decoded ({exc})") from None


def read_source_png(data: bytes, size: int) -> np.ndarray:
    """The saved size x size crop as RGB uint8."""
    rgb = read_png(data, "source face crop")
    if rgb.shape != (size, size, 3):
        raise InvalidImage(f"the source face crop is {rgb.shape[1]}x{rgb.shape[0]}, expected {size}x{size}")
    return rgb


def check_chunk(start: int, end: int, num_frames: int) -> None:
    if not (isinstance(start, int | np.integer) and isinstance(end, int | np.integer)):
        raise InvalidChunk(f"chunk bounds must be integers, got {start!r} and {end!r}")
    if start >= end:
        raise InvalidChunk(f"chunk [{start}, {end}) is empty")
    if start < 0 or end > num_frames:
        raise InvalidChunk(f"chunk [{start}, {end}) is outside the clip of {num_frames} frames")


def store_segment(storage: Storage, key: str, frames: Iterable[np.ndarray], first_frame: int) -> int:
    """Encode frames (clip indices from ``first_frame``) as one video segment and store it at ``key`` in
    one put; returns the frame count."""
    from ..video import encode_segment

    with tempfile.TemporaryDirectory(prefix="sadtalker-segment-") as tmp:
        info = encode_segment(frames, Path(tmp) / "segment.ts", first_frame)
        storage.put(key, Path(info.path).read_bytes())
    return info.frames


# Seconds kept back at the end of the function's time for the write and the reply.
FINISH_MARGIN_S = 20.0
# Paste-back + H.264 encode per frame on one core of the slowest host (plan_chunks' measured compose cost).
SEGMENT_S_PER_FRAME = FINALIZE_CPU_S_PER_FRAME["compose"] * SLOWEST_HOST_FACTOR


def render_chunk(storage: Storage, job: JobKeys, start: int, end: int, params: JobParams, models,
                 time_left: Callable[[], float] | None = None) -> dict:
    """Render frames [start, end); write their video segment (no enhancer) or the lossless frames.

    ``time_left`` (seconds until the function is killed): after every batch the pace so far tells whether
    the rest of the chunk can still be rendered and written in time. When it cannot, the chunk fails now
    with a named retryable error (naming the chunk and the pace) instead of being killed without one: a
    killed function leaves only Step Functions' timeout, and the compute would be spent for nothing."""
    t0 = time.monotonic()
    coeff_file = storage.require_npz(job.coeffs, "coefficient file")
    if "coeffs" not in coeff_file:
        raise InvalidCoefficients(f"{job.coeffs} has no 'coeffs' array")
    coeffs = coeff_file["coeffs"]
    if coeffs.ndim != 2 or coeffs.shape[1] != 70 or coeffs.shape[0] < 1:
        raise InvalidCoefficients(f"{job.coeffs} holds coefficients of shape {coeffs.shape}, expected (frames, 70)")
    if "num_frames" in coeff_file and int(coeff_file["num_frames"]) != coeffs.shape[0]:
        raise InvalidCoefficients(
            f"{job.coeffs} says {int(coeff_file['num_frames'])} frames but holds {coeffs.shape[0]} rows"
        )
    check_chunk(start, end, coeffs.shape[0])
    face = storage.require_npz(job.face, "face data")
    if "coeff_3dmm" not in face:
        raise InvalidCoefficients(f"{job.face} has no 'coeff_3dmm' array")
    inputs = prepare_motion(coeffs, face["coeff_3dmm"], params)
    source = source_image_float(read_source_png(storage.require(job.source_image, "source face crop"), params.size))
    compose = None
    if not params.enhancer:  # this chunk makes its own segment: paste-back is checked before any rendering
        from ..paste_back import PasteBack

        compose = PasteBack(face, read_png(storage.require(job.original_image, "original photo"), "original photo"),
                            params)

    t1 = time.monotonic()
    renderer = load_renderer(models, params.size, params.full_mode)
    t2 = time.monotonic()
    precision = effective_precision(params.precision)
    finish_s = FINISH_MARGIN_S + (0.0 if compose is None else (end - start) * SEGMENT_S_PER_FRAME)

    def watch(b0: int, b1: int) -> None:
        if time_left is None or b1 >= end:
            return
        pace = (time.monotonic() - t2) / (b1 - start)
        left = time_left()
        if pace * (end - b1) + finish_s > left:
            raise TransientError(
                f"out of time: {b1 - start} of {end - start} frames rendered at {pace:.1f} s per frame with "
                f"{left:.0f} s of the function's time left; the chunk will be retried"
            )

    with renderer.lock:
        state = renderer.prepare_source(source, inputs.source_window())
        frames = renderer.render_range(state, inputs, int(start), int(end), batch_size=params.batch_size,
                                       on_batch=watch, precision=precision)
    t3 = time.monotonic()
    frames = to_ubyte(frames)
    if compose is None:
        key = job.chunk(int(start), int(end))
        storage.put_npz(key, {"frames": frames, "start": np.int64(start), "end": np.int64(end)})
    else:
        key = job.segment(int(start), int(end))
        store_segment(storage, key, (compose(f) for f in frames), int(start))
    return {
        "key": key,
        "start": int(start),
        "end": int(end),
        "frames": int(end - start),
        "precision": precision,
        "timings": {
            "read_s": round(t1 - t0, 3),
            MODEL_LOAD_S: round(t2 - t1, 3),
            "render_s": round(t3 - t2, 3),
            "write_s": round(time.monotonic() - t3, 3),  # with paste-back and the encode, if any
        },
    }

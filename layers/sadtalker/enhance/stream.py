"""Streaming, order-preserving, parallel face enhancement of a frame sequence.

``enhance_frames`` pulls frames from an iterator, hands them to worker processes (spawn: no torch
state is forked), and yields results in input order while holding at most ``2 * workers`` frames in
flight, so memory does not grow with the clip length. Each worker loads the networks once and uses
``cores // workers`` torch threads. ``workers <= 1`` runs everything in the calling process.

Each frame's result depends only on the frame, its index, the job seed and the hint: GFPGAN's noise
comes from a generator seeded by (seed, frame index), so any worker, order or retry gives the same frame.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ..errors import TransientError
from ..machine import available_cores
from ..params import JobParams
from ..render.precision import effective_precision
from ..weights import ModelStore, locate_module
from .face_restore import FoundFace, alignable, detect_face, refine_hint, restore_frame
from .loaders import GFPGAN_MODEL, REALESRGAN_MODEL, load_gfpgan, load_rrdbnet, set_threads
from .upsampler import REUSE_TILE, SADTALKER_PRE_PAD, SADTALKER_TILE, SADTALKER_TILE_PAD, TiledUpsampler


@dataclass
class EnhanceStats:
    """Filled in while ``enhance_frames`` runs (read it after the iterator is exhausted)."""

    frames: int = 0
    faces_restored: int = 0
    no_face: int = 0
    no_face_frames: list[int] = field(default_factory=list)  # first 100 indices, for the logs
    tiles_computed: int = 0
    tiles_reused: int = 0
    seconds_face: float = 0.0
    seconds_background: float = 0.0
    seconds_total: float = 0.0
    precision: str = ""  # the arithmetic the enhancer networks used ("fp32" / "bf16")

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def frame_seed(seed: int, index: int) -> int:
    """The GFPGAN noise seed of one frame: a hash of (job seed, frame index), 63 bits."""
    a, b = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


def background_tile(params: JobParams) -> int:
    """SadTalker's tile 400, or the smaller reuse tile in full/extfull (most tiles never change there)."""
    return REUSE_TILE if params.full_mode else SADTALKER_TILE


class FrameEnhancer:
    """Everything one process needs to enhance frames of one job; networks come from memoized loaders."""

    def __init__(
        self,
        models: ModelStore,
        params: JobParams,
        seed: int,
        face_hint: np.ndarray | None = None,
        tile: int | None = None,
        reuse: bool = True,
    ) -> None:
        if not params.enhancer:
            raise ValueError("FrameEnhancer needs params.enhancer")
        self.params, self.seed = params, int(seed)
        self.face_hint = None if face_hint is None else np.asarray(face_hint, dtype=np.float64)
        # precision=bf16 on a CPU without native bf16 runs the exact float32 networks (render.precision)
        self.precision = effective_precision(params.precision)
        self.gfpgan = load_gfpgan(models, self.precision)
        self.upsampler: TiledUpsampler | None = None
        if params.background_enhancer == "realesrgan":
            self.upsampler = TiledUpsampler(
                load_rrdbnet(models, self.precision),
                tile=background_tile(params) if tile is None else tile,
                tile_pad=SADTALKER_TILE_PAD,
                pre_pad=SADTALKER_PRE_PAD,
                reuse=reuse,
            )
        self._backend = None
        self._models_root = Path(models.root)

    def find_face(self, frame_rgb: np.ndarray) -> FoundFace | None:
        if self.face_hint is not None:
            found = refine_hint(frame_rgb, self.face_hint)
        else:
            if self._backend is None:
                self._backend = _landmark_backend(self.params, self._models_root)
            found = detect_face(frame_rgb, self._backend)
        # Degenerate points (e.g. all equal) have no similarity transform: treat as no face.
        return found if found is not None and alignable(found.pts5) else None

    def __call__(self, index: int, frame_rgb: np.ndarray) -> tuple[np.ndarray, dict]:
        if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise ValueError(f"frames must be HxWx3 uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}")
        t0 = time.perf_counter()
        face = self.find_face(frame_rgb)
        gen = torch.Generator().manual_seed(frame_seed(self.seed, index))
        timing = {"bg": 0.0}

        def background(img_bgr: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = self.upsampler.enhance(img_bgr)
            timing["bg"] = time.perf_counter() - t
            return out

        before = (self.upsampler.stats.computed, self.upsampler.stats.reused) if self.upsampler else (0, 0)
        out = restore_frame(frame_rgb, face, self.gfpgan, gen, background if self.upsampler else None)
        after = (self.upsampler.stats.computed, self.upsampler.stats.reused) if self.upsampler else (0, 0)
        total = time.perf_counter() - t0
        info = {
            "face": face is not None,
            "seconds_background": timing["bg"],
            "seconds_face": total - timing["bg"],
            "tiles_computed": after[0] - before[0],
            "tiles_reused": after[1] - before[1],
            "precision": self.precision,
        }
        return out, info


def _landmark_backend(params: JobParams, models_root: Path):
    """The face package's landmark backend (the choice JobParams.landmarks makes)."""
    from ..face.landmarks import get_landmark_backend

    return get_landmark_backend(getattr(params, "landmarks", "auto"), models_root)


# --- worker processes -----------------------------------------------------------------------------
_WORKER: FrameEnhancer | None = None
_INIT_ERROR: Exception | None = None


def _init_worker(root: str, params_json: str, seed: int, face_hint, threads: int, tile: int | None, reuse: bool) -> None:
    global _WORKER, _INIT_ERROR
    set_threads(threads)
    try:
        _WORKER = FrameEnhancer(ModelStore(Path(root)), JobParams.load(params_json), seed, face_hint, tile, reuse)
    except Exception as exc:  # noqa: BLE001 - re-raised by _work so the caller sees the named error
        _INIT_ERROR = exc


def _work(index: int, frame: np.ndarray) -> tuple[np.ndarray, dict]:
    # An initializer that raises would break the pool (reported as a dead worker, i.e. retryable);
    # a bad checkpoint is not retryable, so its error travels back with the first frame instead.
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(index, frame)


def _check_weights(models: ModelStore, params: JobParams) -> None:
    """Fail before starting workers when a checkpoint file is absent (WeightsMissing names it and the fix)."""
    locate_module(models.root, GFPGAN_MODEL)
    if params.background_enhancer == "realesrgan":
        locate_module(models.root, REALESRGAN_MODEL)


def enhance_frames(
    frames_iter: Iterable[np.ndarray],
    *,
    params: JobParams,
    models: ModelStore,
    seed: int,
    workers: int = 1,
    face_hint: np.ndarray | None = None,
    first_index: int = 0,
    progress: Callable[[int], None] | None = None,
    stats: EnhanceStats | None = None,
    tile: int | None = None,
    reuse: bool = True,
) -> Iterator[np.ndarray]:
    """Enhanced RGB uint8 frames (twice the size), in input order.

    ``first_index`` is the clip index of the first frame (it seeds that frame's GFPGAN noise);
    ``progress(done)`` is called after each yielded frame; ``stats`` is filled as frames complete.
    ``tile`` overrides the background tile size (None: ``background_tile(params)``); ``reuse=False``
    recomputes every background tile (benchmarks only: the result is the same).
    """
    stats = stats if stats is not None else EnhanceStats()
    t_start = time.perf_counter()

    def account(info: dict, index: int) -> None:
        stats.frames += 1
        if info["face"]:
            stats.faces_restored += 1
        else:
            stats.no_face += 1
            if len(stats.no_face_frames) < 100:
                stats.no_face_frames.append(index)
        stats.tiles_computed += info["tiles_computed"]
        stats.tiles_reused += info["tiles_reused"]
        stats.seconds_face += info["seconds_face"]
        stats.seconds_background += info["seconds_background"]
        stats.precision = info["precision"]
        stats.seconds_total = time.perf_counter() - t_start
        if progress is not None:
            progress(stats.frames)

    if workers <= 1:
        enhancer = FrameEnhancer(models, params, seed, face_hint, tile, reuse)
        for i, frame in enumerate(frames_iter, start=first_index):
            out, info = enhancer(i, frame)
            account(info, i)
            yield out
        return

    _check_weights(models, params)
    workers = min(workers, available_cores())  # keeps workers * threads <= cores
    threads = max(1, available_cores() // workers)
    hint = None if face_hint is None else np.asarray(face_hint, dtype=np.float64)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(str(models.root), params.to_json(), int(seed), hint, threads, tile, reuse),
    )
    inflight: deque[tuple[int, Future]] = deque()
    try:
        for i, frame in enumerate(frames_iter, start=first_index):
            inflight.append((i, pool.submit(_work, i, frame)))
            if len(inflight) >= 2 * workers:
                j, fut = inflight.popleft()
                out, info = fut.result()
                account(info, j)
                yield out
        while inflight:
            j, fut = inflight.popleft()
            out, info = fut.result()
            account(info, j)
            yield out
    except BrokenProcessPool as exc:
        raise TransientError(f"an enhancement worker process died (out of memory?): {exc}") from None
    finally:
        for _, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)

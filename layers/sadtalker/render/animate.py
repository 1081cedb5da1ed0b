"""Chunked face rendering: per-job source work once, then any frame range of the clip.

``FaceRenderer.prepare_source`` does everything that depends only on the source image and coefficients
(canonical keypoints, the source's mapping and keypoints, the generator's 3-D feature volume and its
compressed copy). ``render_range`` then renders frames [start, end) of a clip, ``batch_size`` consecutive
frames at a time. Because windows are clamped at the clip ends, rendering [0, a) + [a, n) equals
rendering [0, n); when chunk boundaries are multiples of ``batch_size`` the batch compositions are the
same and the result is bit-identical (tests/unit/test_render.py, test_chunks_concatenate_to_the_whole_clip_bit_exactly).

SadTalker batches frames j and L + j together (L = ceil(T / bs)); we batch consecutive frames instead.
Each frame's computation is independent, so this only changes which frames share a batch (the goldens'
tolerances cover batch-composition effects).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..nets.generator import GeneratorConfig, OcclusionAwareSPADEGenerator, SourceFeatures
from ..nets.keypoint_detector import KPDetector, KPDetectorConfig
from ..nets.mapping import HeadMotion, MappingConfig, MappingNet
from ..nets.render_blocks import SpectralConv2d, fold_all_batchnorms
from .memory import tune_allocator
from .semantics import MotionInputs, TransformedKeypoints, transform_keypoints


@dataclass(frozen=True)
class RenderConfig:
    kp: KPDetectorConfig
    generator: GeneratorConfig
    mapping: MappingConfig

    @classmethod
    def official(cls, full_mode: bool) -> RenderConfig:
        return cls(KPDetectorConfig(), GeneratorConfig(), MappingConfig(coeff_nc=73 if full_mode else 70))

    @classmethod
    def reduced(cls, full_mode: bool) -> RenderConfig:
        from .reduced import REDUCED_GENERATOR, REDUCED_KP, reduced_mapping

        return cls(REDUCED_KP, REDUCED_GENERATOR, reduced_mapping(73 if full_mode else 70))


@dataclass
class SourceState:
    """Per-job renderer state (computed once per chunk/job, never per frame)."""

    image: torch.Tensor  # (1, 3, S, S)
    kp_canonical: torch.Tensor  # (1, K, 3)
    motion: HeadMotion  # mapping of the source window
    keypoints: TransformedKeypoints  # source keypoints
    features: SourceFeatures


def to_ubyte(frames: np.ndarray) -> np.ndarray:
    """skimage's img_as_ubyte for float frames in [0, 1]: rint(x * 255) computed in float32."""
    x = np.asarray(frames, dtype=np.float32)
    return np.rint(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)


def source_image_float(rgb_u8: np.ndarray) -> np.ndarray:
    """skimage's img_as_float32 of a uint8 image: uint8 * float32(1/255) (a float32 multiply)."""
    return np.asarray(rgb_u8).astype(np.float32) * np.float32(1 / 255)


@dataclass(frozen=True)
class RenderOptions:
    """Load-time inference rewrites (all keep the float32 algebra; benchmarks/stages.py measures each).

    ``fold_norms``: conv -> BatchNorm pairs folded into one conv. ``fast_spade``: SPADE conditioning convs
    on the segmentation map's own resolution + stacked gamma/beta conv. ``inference_mode``: torch's
    inference mode instead of no_grad (no version counters / view tracking).
    """

    fold_norms: bool = True
    fast_spade: bool = True
    inference_mode: bool = True

    @classmethod
    def plain(cls) -> RenderOptions:
        """The plain eager path (the networks as loaded, no_grad): the benchmarks' baseline."""
        return cls(fold_norms=False, fast_spade=False, inference_mode=False)


class FaceRenderer:
    """Holds the three renderer networks of one (size, crop/full) configuration."""

    def __init__(
        self,
        kp_detector: KPDetector,
        generator: OcclusionAwareSPADEGenerator,
        mapping: MappingNet,
        size: int,
        options: RenderOptions | None = None,
    ):
        self.kp_detector = kp_detector.eval()
        self.generator = generator.eval()
        self.mapping = mapping.eval()
        self.size = size
        self.channels = mapping.cfg.coeff_nc
        self.options = options = options or RenderOptions()
        # spectral-norm effective weights are constants at inference: compute them once, at load time
        for module in self.generator.modules():
            if isinstance(module, SpectralConv2d):
                module.effective_weight()
        self.kp_detector.requires_grad_(False)
        self.generator.requires_grad_(False)
        self.mapping.requires_grad_(False)
        if options.fold_norms:
            fold_all_batchnorms(self.kp_detector)
        self.generator.optimize_for_inference(fold_norms=options.fold_norms, fast_spade=options.fast_spade)
        self._grad_off = torch.inference_mode if options.inference_mode else torch.no_grad
        # one job at a time per renderer: the networks are shared by a warm container's threads
        self.lock = threading.Lock()

    def prepare_source(self, source_rgb: np.ndarray, source_window: np.ndarray) -> SourceState:
        """source_rgb: (S, S, 3) float32 in [0, 1]; source_window: (C, 27). Always float32 (once per job)."""
        if source_rgb.shape != (self.size, self.size, 3):
            raise ValueError(f"source image is {source_rgb.shape}, the renderer expects ({self.size}, {self.size}, 3)")
        with self._grad_off():
            image = torch.from_numpy(np.ascontiguousarray(source_rgb.transpose(2, 0, 1)))[None]
            kp_canonical = self.kp_detector(image)
            motion = self.mapping(torch.from_numpy(np.asarray(source_window, np.float32))[None])
            keypoints = transform_keypoints(kp_canonical, motion)
            return SourceState(image, kp_canonical, motion, keypoints, self.generator.encode_source(image))

    def drive(self, windows: np.ndarray, overrides: dict[str, np.ndarray], kp_canonical: torch.Tensor):
        """Driving keypoints for a batch of windows (B, C, 27) with optional per-frame degree overrides."""
        with self._grad_off():
            motion = self.mapping(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
            given = {f"{k}_in": torch.from_numpy(np.asarray(v, np.float32)) for k, v in overrides.items()}
            return motion, transform_keypoints(kp_canonical, motion, **given)

    def render_batch(
        self, state: SourceState, windows: np.ndarray, overrides: dict[str, np.ndarray], precision: str = "fp32"
    ) -> dict:
        """One batch: windows (B, C, 27) -> generator outputs (prediction (B, 3, S, S), dense motion...).

        ``precision="bf16"`` runs the per-frame generator's convolutions in bfloat16 (weights cast once, see
        ``OcclusionAwareSPADEGenerator.lowp_parts``; fast on CPUs with native bf16, ``sadtalker.render.precision``);
        the mapping network and the keypoint maths stay float32 (the head pose is sensitive), and every output
        is float32.
        """
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        motion, kp = self.drive(windows, overrides, state.kp_canonical)
        with self._grad_off():
            out = self.generator.render(state.features, kp.kp, state.keypoints.kp, precision)
        out["motion"], out["keypoints"] = motion, kp
        return out

    def render_range(
        self,
        state: SourceState,
        inputs: MotionInputs,
        start: int,
        end: int,
        batch_size: int = 2,
        on_batch: Callable[[int, int], None] | None = None,
        precision: str = "fp32",
    ) -> np.ndarray:
        """Frames [start, end) of the clip as float32 (N, S, S, 3) in [0, 1]."""
        out = np.empty((end - start, self.size, self.size, 3), np.float32)
        for b0 in range(start, end, batch_size):
            b1 = min(b0 + batch_size, end)
            windows, overrides = inputs.target_windows(b0, b1), inputs.pose_overrides(b0, b1)
            pred = self.render_batch(state, windows, overrides, precision)["prediction"]
            out[b0 - start : b1 - start] = pred.permute(0, 2, 3, 1).numpy()
            if on_batch:
                on_batch(b0, b1)
        return out


def _build(cfg: RenderConfig) -> tuple[KPDetector, OcclusionAwareSPADEGenerator, MappingNet]:
    return KPDetector(cfg.kp), OcclusionAwareSPADEGenerator(cfg.generator), MappingNet(cfg.mapping)


def build_renderer(models, size: int, full_mode: bool, options: RenderOptions | None = None) -> FaceRenderer:
    """Load the three networks strictly from the model store (any official layout), then apply ``options``."""
    cfg = RenderConfig.reduced(full_mode) if models.profile == "reduced" else RenderConfig.official(full_mode)
    kp, gen, mapping = _build(cfg)
    mapping_module = "mapping_full" if full_mode else "mapping_crop"
    for net, module in ((kp, "kp_extractor"), (gen, "generator"), (mapping, mapping_module)):
        models.load_into(net, module, size)
    return FaceRenderer(kp, gen, mapping, size, options)


@lru_cache(maxsize=4)
def _cached(root: str, profile: str, size: int, full_mode: bool) -> FaceRenderer:
    from ..weights import ModelStore

    return build_renderer(ModelStore(Path(root)), size, full_mode)


def load_renderer(models, size: int, full_mode: bool) -> FaceRenderer:
    """Memoized per (store directory, profile, size, full_mode): a warm container loads the models once.

    Also keeps freed memory in this process's heap (``memory.tune_allocator``): fewer page faults per frame.
    """
    tune_allocator()
    return _cached(str(models.root), models.profile, int(size), bool(full_mode))

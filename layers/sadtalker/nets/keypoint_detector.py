"""Canonical 3-D keypoints of the source image (face-vid2vid ``KPDetector``).

Checkpoint module ``kp_extractor``. Input (B, 3, S, S) in [0, 1]; output (B, num_kp, 3) in (x, y, z).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .render_blocks import DownBlock2d, UpBlock3d, coordinate_grid_3d


@dataclass(frozen=True)
class KPDetectorConfig:
    """Defaults are facerender.yaml's ``common_params`` + ``kp_detector_params``."""

    image_channel: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_channel: int = 16384
    reshape_depth: int = 16
    num_kp: int = 15
    temperature: float = 0.1
    scale_factor: float = 0.25
    antialias_kernel: int = 13  # 2 * round(4 * sigma) + 1 with sigma = (1 / scale - 1) / 2


class _KPHourglass(nn.Module):
    """2-D encoder -> 1x1 conv -> view as 3-D -> 3-D decoder (attribute names of the checkpoint)."""

    def __init__(self, cfg: KPDetectorConfig) -> None:
        super().__init__()
        be, mf, n = cfg.block_expansion, cfg.max_features, cfg.num_blocks
        self.down_blocks = nn.Sequential()
        for i in range(n):
            cin = cfg.image_channel if i == 0 else min(mf, be * 2**i)
            self.down_blocks.add_module(f"down{i}", DownBlock2d(cin, min(mf, be * 2 ** (i + 1))))
        self.conv = nn.Conv2d(min(mf, be * 2**n), cfg.reshape_channel, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(n):
            self.up_blocks.add_module(
                f"up{i}", UpBlock3d(min(mf, be * 2 ** (n - i)), min(mf, be * 2 ** (n - i - 1)))
            )
        self.reshape_depth = cfg.reshape_depth
        self.out_channels = min(mf, be * 2 ** 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        # channel index c' * depth + d, as the original's view
        out = out.view(b, c // self.reshape_depth, self.reshape_depth, h, w)
        return self.up_blocks(out)


class KPDetector(nn.Module):
    def __init__(self, cfg: KPDetectorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or KPDetectorConfig()
        self.predictor = _KPHourglass(cfg)
        self.kp = nn.Conv3d(self.predictor.out_channels, cfg.num_kp, kernel_size=3, padding=1)
        k = cfg.antialias_kernel
        # Fixed Gaussian of the x1/4 anti-aliased downsampling; stored in the checkpoint as ``down.weight``.
        self.down = nn.Module()
        self.down.register_buffer("weight", torch.zeros(cfg.image_channel, 1, k, k))
        self.stride = round(1 / cfg.scale_factor)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.cfg.antialias_kernel // 2
        out = F.pad(x, (pad, pad, pad, pad))
        out = F.conv2d(out, self.down.weight, groups=self.cfg.image_channel)
        return out[:, :, :: self.stride, :: self.stride]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feature = self.predictor(self.downsample(image))
        logits = self.kp(feature)
        b, k, d, h, w = logits.shape
        # Normalised in float64: a float32 softmax over d*h*w positions (262,144 at 512 px) sums to 1 only
        # within ~1e-4 on an AVX2 CPU (serial vector accumulation; the error depends on the SIMD width),
        # which scales every keypoint by as much. What remains against a float32 reference (~4e-5 at 512 px)
        # is the 3-D convolutions' accumulation order: the float64 network is as far from it.
        scaled = logits.view(b, k, -1) / self.cfg.temperature
        heat = F.softmax(scaled.double(), dim=2).to(logits.dtype).view(b, k, d, h, w, 1)
        grid = coordinate_grid_3d(d, h, w, logits.dtype).view(1, 1, d, h, w, 3)
        return (heat * grid).sum(dim=(2, 3, 4))

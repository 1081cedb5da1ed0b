"""RRDBNet as configured for Real-ESRGAN x2plus.

x2 overall: pixel-unshuffle by 2 (3 -> 12 channels at half resolution), the RRDB trunk, then two
nearest x2 upsampling steps. Parameter names are the official ones so ``RealESRGAN_x2plus.pth`` loads
with strict=True.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .render_blocks import lowp_twin


@dataclass(frozen=True)
class RRDBNetConfig:
    """``RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2)``."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    scale: int = 2


def reduced_rrdbnet_config() -> RRDBNetConfig:
    """Same code, 1/8 of the channels and 4 blocks: for fast pipeline tests with synthetic weights."""
    return RRDBNetConfig(num_feat=8, num_block=4, num_grow_ch=4)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int, grow: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, grow, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + grow, grow, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * grow, grow, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * grow, grow, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * grow, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = _lrelu(self.conv1(x))
        x2 = _lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = _lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = _lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, grow: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, grow)
        self.rdb2 = ResidualDenseBlock(num_feat, grow)
        self.rdb3 = ResidualDenseBlock(num_feat, grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, cfg: RRDBNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or RRDBNetConfig()
        # x2 and x1 nets unshuffle first so the trunk runs at a quarter of the pixels (x4 does not).
        self.unshuffle = {1: 4, 2: 2, 4: 1}[cfg.scale]
        nf = cfg.num_feat
        self.conv_first = nn.Conv2d(cfg.num_in_ch * self.unshuffle**2, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, cfg.num_grow_ch) for _ in range(cfg.num_block)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, cfg.num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B,3,H,W) RGB in [0,1], H and W divisible by the unshuffle factor. Raw output, not clamped."""
        if self.unshuffle > 1:
            h, w = x.shape[-2:]
            if h % self.unshuffle or w % self.unshuffle:
                raise ValueError(f"RRDBNet x{self.cfg.scale} needs sides divisible by {self.unshuffle}, got {h}x{w}")
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


def lowp_rrdbnet(net: RRDBNet, dtype: torch.dtype = torch.bfloat16) -> RRDBNet:
    """A copy of ``net`` whose convolutions run in ``dtype`` (weights cast once, channels-last); the dense
    concatenations, activations and the residual sums stay float32. ``net`` is unchanged."""
    return lowp_twin(net, dtype=dtype)

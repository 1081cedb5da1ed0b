"""MappingNet: a 27-frame window of 3DMM coefficients -> head pose bins, translation, keypoint offsets.

Checkpoint modules ``mapping_crop`` (70 coefficient channels,
mapping_00229) and ``mapping_full`` (73 channels: the source crop numbers appended, mapping_00109).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MappingConfig:
    coeff_nc: int = 70
    descriptor_nc: int = 1024
    layers: int = 3
    num_kp: int = 15
    num_bins: int = 66


@dataclass
class HeadMotion:
    """Raw MappingNet outputs for a batch: pose logits (B, bins), translation (B, 3), expression (B, 3K)."""

    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor


class MappingNet(nn.Module):
    def __init__(self, cfg: MappingConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MappingConfig()
        c = cfg.descriptor_nc
        self.first = nn.Sequential(nn.Conv1d(cfg.coeff_nc, c, kernel_size=7, padding=0, bias=True))
        for i in range(cfg.layers):
            # index 0 of the original Sequential is the (parameter-free) LeakyReLU
            setattr(self, f"encoder{i}", nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(c, c, kernel_size=3, dilation=3)))
        self.fc_roll = nn.Linear(c, cfg.num_bins)
        self.fc_pitch = nn.Linear(c, cfg.num_bins)
        self.fc_yaw = nn.Linear(c, cfg.num_bins)
        self.fc_t = nn.Linear(c, 3)
        self.fc_exp = nn.Linear(c, 3 * cfg.num_kp)

    def forward(self, window: torch.Tensor) -> HeadMotion:
        """window: (B, coeff_nc, 27)."""
        out = self.first(window)
        for i in range(self.cfg.layers):
            # the skip takes the non-activated input, cut to the dilated conv's output length
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]
        out = F.adaptive_avg_pool1d(out, 1).view(out.shape[0], -1)
        return HeadMotion(
            yaw=self.fc_yaw(out), pitch=self.fc_pitch(out), roll=self.fc_roll(out), t=self.fc_t(out), exp=self.fc_exp(out)
        )

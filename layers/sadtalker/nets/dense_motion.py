"""Dense motion network: keypoints -> a dense 3-D deformation field and an occlusion map.

face-vid2vid's dense motion network. Lives inside the generator checkpoint as
``dense_motion_network.*``. The source-only part (compressing the 3-D feature volume) is split out as
``compress_source`` so a renderer can compute it once per job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .render_blocks import DownBlock3d, UpBlock3d, coordinate_grid_3d

KP_VARIANCE = 0.01
MASK_FLOOR = 1e-3  # original quirk: softmax weights below this are zeroed without renormalising


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    num_kp: int = 15
    feature_channel: int = 32
    reshape_depth: int = 16
    compress: int = 4


class _Encoder(nn.Module):
    def __init__(self, be: int, cin: int, n: int, mf: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(cin if i == 0 else min(mf, be * 2**i), min(mf, be * 2 ** (i + 1))) for i in range(n)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _Decoder(nn.Module):
    folds_norm = True  # conv -> BN: foldable at load time

    def __init__(self, be: int, cin: int, n: int, mf: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(n)):
            c_in = (1 if i == n - 1 else 2) * min(mf, be * 2 ** (i + 1))
            blocks.append(UpBlock3d(c_in, min(mf, be * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels = be + cin
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels, affine=True)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class _Hourglass(nn.Module):
    def __init__(self, be: int, cin: int, n: int, mf: int) -> None:
        super().__init__()
        self.encoder = _Encoder(be, cin, n, mf)
        self.decoder = _Decoder(be, cin, n, mf)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def keypoint_gaussians(kp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """exp(-0.5 |grid - kp|^2 / 0.01) per keypoint: kp (B, K, 3), grid (d, h, w, 3) -> (B, K, d, h, w)."""
    diff = grid.unsqueeze(0).unsqueeze(0) - kp.view(kp.shape[0], kp.shape[1], 1, 1, 1, 3)
    return torch.exp(-0.5 * (diff**2).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    def __init__(self, cfg: DenseMotionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DenseMotionConfig()
        k1 = cfg.num_kp + 1
        self.hourglass = _Hourglass(cfg.block_expansion, k1 * (cfg.compress + 1), cfg.num_blocks, cfg.max_features)
        self.mask = nn.Conv3d(self.hourglass.out_channels, k1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(cfg.feature_channel, cfg.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(cfg.compress, affine=True)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels * cfg.reshape_depth, 1, kernel_size=7, padding=3)

    def compress_source(self, feature_3d: torch.Tensor) -> torch.Tensor:
        """Source-only: the compressed feature volume F' (B, compress, d, h, w)."""
        return F.relu(self.norm(self.compress(feature_3d)))

    def forward(self, compressed: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict:
        """compressed: F' (B, c, d, h, w) from ``compress_source``; keypoints (B, K, 3).

        Returns ``deformation`` (B, d, h, w, 3), ``occlusion_map`` (B, 1, h, w) and ``mask`` (B, K+1, d, h, w).
        """
        b, c, d, h, w = compressed.shape
        k = kp_driving.shape[1]
        grid = coordinate_grid_3d(d, h, w, compressed.dtype)
        # sparse motions: identity, then G - kp_driving_k + kp_source_k (same op order as the original)
        shifted = grid.view(1, 1, d, h, w, 3) - kp_driving.view(b, k, 1, 1, 1, 3)
        shifted = shifted + kp_source.view(b, k, 1, 1, 1, 3)
        motions = torch.cat([grid.view(1, 1, d, h, w, 3).expand(b, 1, d, h, w, 3), shifted], dim=1)

        feats = compressed.unsqueeze(1).expand(b, k + 1, c, d, h, w).reshape(b * (k + 1), c, d, h, w)
        deformed = F.grid_sample(feats, motions.reshape(b * (k + 1), d, h, w, 3), align_corners=False)
        deformed = deformed.view(b, k + 1, c, d, h, w)

        heat = keypoint_gaussians(kp_driving, grid) - keypoint_gaussians(kp_source, grid)
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2)
        hg_in = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)

        pred = self.hourglass(hg_in)
        mask = F.softmax(self.mask(pred), dim=1)
        kept = torch.where(mask < MASK_FLOOR, torch.zeros_like(mask), mask).unsqueeze(2)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * kept).sum(dim=1).permute(0, 2, 3, 4, 1)
        occlusion = torch.sigmoid(self.occlusion(pred.reshape(b, -1, h, w)))
        return {"deformation": deformation, "occlusion_map": occlusion, "mask": mask}

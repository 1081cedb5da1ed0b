"""3DMM coefficient regressor (``face_3drecon``): a ResNet-50 v1.5 with seven 1x1 conv heads.

Parameter names follow the torchvision ResNet layout under ``backbone.`` and ``final_layers.N``, so
the official state dict (SadTalker safetensors bundle or ``epoch_20.pth['net_recon']``) loads strictly.
The backbone's classifier is absent (``use_last_fc=False``): the heads read the pooled 2048 x 1 x 1 map.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from ..weights import ModelStore, load_strict, locate_module

COEFF_SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}


@dataclass(frozen=True)
class FaceReconConfig:
    """The official configuration (resnet50, use_last_fc=False)."""

    stage_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    stage_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    expansion: int = 4
    # id, exp, tex, angle, gamma, trans-xy, trans-z
    head_sizes: tuple[int, ...] = (80, 64, 80, 3, 27, 2, 1)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride: v1.5) -> 1x1, with a projection shortcut when shapes change."""

    def __init__(self, in_ch: int, width: int, stride: int, expansion: int):
        super().__init__()
        out_ch = width * expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class ResNetBackbone(nn.Module):
    """Stem (7x7/2, BN, ReLU, 3x3/2 max-pool), four bottleneck stages, global average pool."""

    def __init__(self, cfg: FaceReconConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        for i, (blocks, width) in enumerate(zip(cfg.stage_blocks, cfg.stage_widths, strict=True)):
            stride = 1 if i == 0 else 2
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(in_ch, width, stride if b == 0 else 1, cfg.expansion))
                in_ch = width * cfg.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.out_channels = in_ch
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class FaceReconNet(nn.Module):
    """(B, 3, 224, 224) RGB in [0, 1] -> (B, 257) coefficients: id | exp | tex | angle | gamma | trans."""

    def __init__(self, cfg: FaceReconConfig | None = None):
        super().__init__()
        cfg = cfg or FaceReconConfig()
        self.backbone = ResNetBackbone(cfg)
        self.final_layers = nn.ModuleList(
            nn.Conv2d(self.backbone.out_channels, n, 1, bias=True) for n in cfg.head_sizes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(x)
        return torch.flatten(torch.cat([head(pooled) for head in self.final_layers], dim=1), 1)


def split_coeffs(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: coeffs[:, sl] for name, sl in COEFF_SLICES.items()}


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load_cached(models: ModelStore, size: int) -> FaceReconNet:
    net = FaceReconNet()
    state = models.state_dict("face_3drecon", size)
    load_strict(net, state, filename=locate_module(models.root, "face_3drecon", size).path.name, module="face_3drecon")
    return net.eval().requires_grad_(False)


def load_face_recon(models: ModelStore, size: int = 256) -> FaceReconNet:
    """The regressor with the store's weights, loaded once per (store, size) in a warm process."""
    with _LOAD_LOCK:  # a second thread waits for the first load instead of loading again
        return _load_cached(models, size)

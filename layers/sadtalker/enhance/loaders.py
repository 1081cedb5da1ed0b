"""Memoized loaders of the two enhancer networks (one load per warm process / worker)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..nets.gfpgan import GFPGANConfig, GFPGANv1Clean, reduced_gfpgan_config
from ..nets.rrdbnet import RRDBNet, RRDBNetConfig, reduced_rrdbnet_config
from ..weights import ModelStore

GFPGAN_MODEL = "gfpgan_v1.4"
REALESRGAN_MODEL = "realesrgan_x2plus"


def gfpgan_config(profile: str) -> GFPGANConfig:
    return reduced_gfpgan_config() if profile == "reduced" else GFPGANConfig()


def rrdbnet_config(profile: str) -> RRDBNetConfig:
    return reduced_rrdbnet_config() if profile == "reduced" else RRDBNetConfig()


@lru_cache(maxsize=4)
def _load_gfpgan(root: Path, profile: str) -> GFPGANv1Clean:
    net = GFPGANv1Clean(gfpgan_config(profile))
    ModelStore(root).load_into(net, GFPGAN_MODEL)  # WeightsMissing names the file and how to get it
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def _load_rrdbnet(root: Path, profile: str) -> RRDBNet:
    net = RRDBNet(rrdbnet_config(profile))
    ModelStore(root).load_into(net, REALESRGAN_MODEL)
    return net.eval().requires_grad_(False)


def load_gfpgan(models: ModelStore) -> GFPGANv1Clean:
    """GFPGANv1.4.pth in the configuration of ``models.profile``; cached per (directory, profile)."""
    return _load_gfpgan(Path(models.root), models.profile)


def load_rrdbnet(models: ModelStore) -> RRDBNet:
    """RealESRGAN_x2plus.pth in the configuration of ``models.profile``; cached per (directory, profile)."""
    return _load_rrdbnet(Path(models.root), models.profile)


def set_threads(n: int) -> None:
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)

"""Memoized loaders of the two enhancer networks (one load per warm process / worker)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..nets.gfpgan import GFPGANConfig, GFPGANv1Clean, lowp_gfpgan, reduced_gfpgan_config
from ..nets.rrdbnet import RRDBNet, RRDBNetConfig, lowp_rrdbnet, reduced_rrdbnet_config
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


@lru_cache(maxsize=4)
def _load_gfpgan_bf16(root: Path, profile: str) -> GFPGANv1Clean:
    return lowp_gfpgan(_load_gfpgan(root, profile))


@lru_cache(maxsize=4)
def _load_rrdbnet_bf16(root: Path, profile: str) -> RRDBNet:
    return lowp_rrdbnet(_load_rrdbnet(root, profile))


def _check_precision(precision: str) -> None:
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def load_gfpgan(models: ModelStore, precision: str = "fp32") -> GFPGANv1Clean:
    """GFPGANv1.4.pth in the configuration of ``models.profile``; cached per (directory, profile, precision).

    ``precision="bf16"``: the bfloat16 twin (convolutions in bf16, weights cast once; ``nets.gfpgan.lowp_gfpgan``).
    """
    _check_precision(precision)
    load = _load_gfpgan_bf16 if precision == "bf16" else _load_gfpgan
    return load(Path(models.root), models.profile)


def load_rrdbnet(models: ModelStore, precision: str = "fp32") -> RRDBNet:
    """RealESRGAN_x2plus.pth in the configuration of ``models.profile``; cached per (directory, profile, precision)."""
    _check_precision(precision)
    load = _load_rrdbnet_bf16 if precision == "bf16" else _load_rrdbnet
    return load(Path(models.root), models.profile)


def set_threads(n: int) -> None:
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)

"""Memoized loaders of the two enhancer networks (one load per warm process / worker)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..nets.gfpgan import GFPGANConfig, GFPGANv1Clean, reduced_gfpgan_config
from ..nets.rrdbnet import RRDBNet, RRDBNetConfig, reduced_rrdbnet_config
from ..weights import ModelStore, load_strict, locate_module, read_module
from ..weights.checkpoints import enhancer_file

GFPGAN_MODEL = "gfpgan_v1.4"
REALESRGAN_MODEL = "realesrgan_x2plus"


def gfpgan_config(profile: str) -> GFPGANConfig:
    return reduced_gfpgan_config() if profile == "reduced" else GFPGANConfig()


def rrdbnet_config(profile: str) -> RRDBNetConfig:
    return reduced_rrdbnet_config() if profile == "reduced" else RRDBNetConfig()


def _state(models: ModelStore, model: str) -> dict:
    if models.profile == "reduced":
        # Reduced synthetic weights do not match the official manifest by design; the strict load
        # against the reduced network below still checks every key and shape.
        return read_module(locate_module(models.root, model))
    return models.state_dict(model)  # raises WeightsMissing naming the file and how to get it


@lru_cache(maxsize=4)
def _load_gfpgan(root: Path, profile: str) -> GFPGANv1Clean:
    models = ModelStore(root)
    net = GFPGANv1Clean(gfpgan_config(profile))
    load_strict(net, _state(models, GFPGAN_MODEL), filename=enhancer_file(GFPGAN_MODEL), module=GFPGAN_MODEL)
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def _load_rrdbnet(root: Path, profile: str) -> RRDBNet:
    models = ModelStore(root)
    net = RRDBNet(rrdbnet_config(profile))
    load_strict(net, _state(models, REALESRGAN_MODEL), filename=enhancer_file(REALESRGAN_MODEL), module=REALESRGAN_MODEL)
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

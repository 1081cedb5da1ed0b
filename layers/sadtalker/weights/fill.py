"""Synthetic weights: the two deterministic fill specifications of the parity kit, in our own code.

SadTalker modules follow the parity kit's fill spec for SadTalker (float64 arithmetic, one rounding to float32,
per-module gains, the anti-alias buffer and derived spectral-norm vectors). The enhancers follow
the kit's fill spec for the enhancers (float32 arithmetic with per-family overrides). Values depend only on the
key name and shape, so every layout of a module gets identical tensors.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np

from .manifest import ENHANCER_MODELS, TensorSpec, module_specs

# Gains of the SadTalker spec (every other module: 1.0); the spec explains why.
SADTALKER_GAINS = {"kp_extractor": 1.4, "generator": 1.3, "mapping_full": 0.3}


def _normal(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Unit normals (float64) from a generator seeded by the CRC-32 of the key."""
    return np.random.default_rng(zlib.crc32(key.encode("utf-8"))).standard_normal(shape)


def _antialias_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """KPDetector's fixed Gaussian for a x1/4 downsampling: sigma 1.5 on a 13-tap grid."""
    size = shape[-1]
    sigma, centre = (1 / 0.25 - 1) / 2, (size - 1) / 2
    g = np.exp(-((np.arange(size, dtype=np.float64) - centre) ** 2) / (2 * sigma**2))
    k2 = np.outer(g, g)
    return np.broadcast_to((k2 / k2.sum()).astype(np.float32), shape).copy()


def fill_sadtalker_module(module: str) -> dict[str, np.ndarray]:
    """All tensors of a SadTalker module, in manifest order."""
    return fill_specs(module_specs(module), SADTALKER_GAINS.get(module, 1.0))


def fill_specs(specs: tuple[TensorSpec, ...] | list[TensorSpec], gain: float = 1.0) -> dict[str, np.ndarray]:
    """The SadTalker fill rule applied to any (key, shape) list, e.g. a reduced network's state dict."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        key, shape = spec.key, spec.shape
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "weight_v":
            continue  # derived below, once weight_orig and weight_u exist
        if leaf == "num_batches_tracked":
            out[key] = np.zeros(shape, np.int64)
        elif leaf == "running_mean":
            out[key] = np.zeros(shape, np.float32)
        elif leaf == "running_var":
            out[key] = np.ones(shape, np.float32)
        elif key == "down.weight":
            out[key] = _antialias_kernel(shape)
        else:
            x = _normal(key, shape)
            if leaf == "weight_u":
                x = x / np.linalg.norm(x)
            elif len(shape) >= 2:
                x = x * (gain / math.sqrt(math.prod(shape[1:])))
            elif leaf == "weight":
                x = 1.0 + 0.1 * x
            else:
                x = 0.01 * x
            out[key] = x.astype(np.float32)
    for spec in specs:
        if spec.key.endswith(".weight_v"):
            base = spec.key[: -len("weight_v")]
            u = out[base + "weight_u"].astype(np.float64)
            w = out[base + "weight_orig"].astype(np.float64).reshape(len(u), -1)
            v = w.T @ u
            out[spec.key] = (v / np.linalg.norm(v)).astype(np.float32)
    return {spec.key: out[spec.key] for spec in specs}


# --- enhancers ------------------------------------------------------------------------------------
def _f32(x: float) -> np.float32:
    return np.float32(x)


def _n32(key: str, shape: tuple[int, ...]) -> np.ndarray:
    return _normal(key, shape).astype(np.float32)


def _enhancer_base(key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if key.endswith("running_mean"):
        return np.zeros(shape, np.float32)
    if key.endswith("running_var"):
        return np.ones(shape, np.float32)
    if len(shape) >= 2:
        return _n32(key, shape) * _f32(1.0 / np.sqrt(math.prod(shape[1:])))
    if len(shape) == 1 and key.endswith("bias"):
        return _n32(key, shape) * _f32(0.01)
    if len(shape) == 1 and key.endswith("weight"):
        return _f32(1.0) + _f32(0.1) * _n32(key, shape)
    raise ValueError(f"no fill rule for {key} {shape}")


def _gfpgan_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key.endswith("bias") and len(shape) >= 2:  # (1,C,1,1) StyleConv/ToRGB biases
        return _n32(key, shape) * _f32(0.01)
    if re.fullmatch(r"condition_scale\.\d+\.2\.bias", key):
        return _f32(1.0) + _f32(0.1) * _n32(key, shape)
    if re.fullmatch(r"condition_(scale|shift)\.\d+\.2\.weight", key):
        return _n32(key, shape) * _f32(0.1 / np.sqrt(math.prod(shape[1:])))
    if key == "stylegan_decoder.constant_input.weight" or re.fullmatch(r"stylegan_decoder\.noises\.noise\d+", key):
        return _n32(key, shape)
    if re.fullmatch(r"stylegan_decoder\.(style_conv1|style_convs\.\d+)\.weight", key):
        return _f32(0.1) + _f32(0.01) * _n32(key, shape)
    return _enhancer_base(key, shape)


def _rrdbnet_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key == "conv_body.weight":
        return _n32(key, shape) * _f32(0.02 / np.sqrt(math.prod(shape[1:])))
    if key == "conv_last.bias":
        return _f32(0.5) + _f32(0.01) * _n32(key, shape)
    return _enhancer_base(key, shape)


_ENHANCER_RULES = {"gfpgan_v1.4": _gfpgan_value, "realesrgan_x2plus": _rrdbnet_value}


def fill_enhancer_model(model: str) -> dict[str, np.ndarray]:
    rule = _ENHANCER_RULES[model]
    out = {}
    for spec in module_specs(model):
        arr = rule(spec.key, spec.shape)
        if arr.dtype != np.dtype(spec.dtype):
            raise TypeError(f"{spec.key}: made {arr.dtype}, manifest says {spec.dtype}")
        out[spec.key] = arr
    return out


def fill_enhancer_specs(model: str, specs: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The enhancer fill rule of ``model`` applied to other shapes (e.g. a reduced network's state dict)."""
    rule = _ENHANCER_RULES[model]
    return {key: rule(key, tuple(shape)) for key, shape in specs.items()}


def fill_module(module: str) -> dict[str, np.ndarray]:
    """Synthetic tensors of any module (SadTalker module name or enhancer model name)."""
    if module in ENHANCER_MODELS:
        return fill_enhancer_model(module)
    return fill_sadtalker_module(module)

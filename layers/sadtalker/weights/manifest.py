"""The checkpoint manifests shipped with the package (copies of the parity kit's manifest.json files).

They list every tensor (module-local key, shape, dtype) of every official checkpoint and how the
release files nest or prefix them; the readers, the strict checks and the synthetic fill use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_DIR = Path(__file__).parent / "manifests"


@dataclass(frozen=True)
class TensorSpec:
    key: str
    shape: tuple[int, ...]
    dtype: str


@cache
def sadtalker_manifest() -> dict:
    return json.loads((_DIR / "sadtalker.json").read_text())


@cache
def enhancer_manifest() -> dict:
    return json.loads((_DIR / "enhancers.json").read_text())


SADTALKER_MODULES: tuple[str, ...] = (
    "face_3drecon",
    "audio2exp",
    "audio2pose",
    "kp_extractor",
    "generator",
    "he_estimator",
    "mapping_crop",
    "mapping_full",
)
ENHANCER_MODELS: tuple[str, ...] = ("gfpgan_v1.4", "realesrgan_x2plus")


@cache
def module_specs(module: str) -> tuple[TensorSpec, ...]:
    """Tensor specs of a SadTalker module or an enhancer model, in state_dict order."""
    if module in ENHANCER_MODELS:
        entries = enhancer_manifest()["models"][module]["state_dict"]
    else:
        entries = sadtalker_manifest()["modules"][module]["tensors"]
    return tuple(TensorSpec(e["key"], tuple(e["shape"]), e["dtype"].replace("torch.", "")) for e in entries)

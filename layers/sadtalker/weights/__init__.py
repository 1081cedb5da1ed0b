"""Official checkpoints: manifests, readers/writers for every release layout, strict loading,
synthetic weights (the parity kit's fill specs) and the model store."""

from .checkpoints import (
    SADTALKER_LAYOUTS,
    check_state,
    load_module_state,
    load_strict,
    locate_module,
    read_module,
)
from .fill import fill_module
from .manifest import ENHANCER_MODELS, SADTALKER_MODULES, module_specs
from .store import ModelStore, requirements, write_synthetic

__all__ = [
    "ENHANCER_MODELS",
    "SADTALKER_LAYOUTS",
    "SADTALKER_MODULES",
    "ModelStore",
    "check_state",
    "fill_module",
    "load_module_state",
    "load_strict",
    "locate_module",
    "module_specs",
    "read_module",
    "requirements",
    "write_synthetic",
]

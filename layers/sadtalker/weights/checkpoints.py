"""Official checkpoint files: which file holds which module, readers, writers and strict loading.

Layouts (see the manifests):
- ``safetensors_256`` / ``safetensors_512``: ``SadTalker_V0.0.2_<size>.safetensors`` (flat, prefixed
  keys) + ``mapping_00229-model.pth.tar`` / ``mapping_00109-model.pth.tar`` ({'mapping': ...}).
- ``v0.0.2_pth``: the older separate ``.pth`` files, each a dict nesting module state dicts.
- enhancers: ``GFPGANv1.4.pth`` and ``RealESRGAN_x2plus.pth``, each {'params_ema': ...} (or 'params').
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError, WeightsMissing
from .manifest import ENHANCER_MODELS, enhancer_manifest, module_specs, sadtalker_manifest

if TYPE_CHECKING:
    import torch

SADTALKER_LAYOUTS = ("safetensors_256", "safetensors_512", "v0.0.2_pth")
MAPPING_FILES = {"mapping_crop": "mapping_00229-model.pth.tar", "mapping_full": "mapping_00109-model.pth.tar"}


def bundle_name(size: int) -> str:
    return sadtalker_manifest()["layouts"][f"safetensors_{size}"]["file"]


def _bundle_prefixes() -> dict[str, str]:
    entries = sadtalker_manifest()["layouts"]["safetensors_256"]["entries"]
    return {e["module"]: e["prefix"] for e in entries}


def _pth_slots() -> dict[str, tuple[str, str]]:
    """module -> (file name, slot) for the v0.0.2 .pth files (wav2lip excluded: never opened)."""
    out = {}
    for fname, desc in sadtalker_manifest()["layouts"]["v0.0.2_pth"]["files"].items():
        if fname == "wav2lip.pth":
            continue
        for slot, module in desc["nesting"].items():
            if slot != "epoch":
                out[module] = (fname, slot)
    return out


def enhancer_file(model: str) -> str:
    return enhancer_manifest()["models"][model]["file"]


@dataclass(frozen=True)
class ModuleSource:
    """Where a module's tensors live: a file, and a key prefix (bundle) or a nesting slot (.pth)."""

    module: str
    path: Path
    prefix: str = ""
    slot: str | None = None


def locate_module(weights_dir: Path, module: str, size: int = 256) -> ModuleSource:
    """Find the file holding ``module`` for a render size: the safetensors bundle first, then v0.0.2."""
    weights_dir = Path(weights_dir)
    if module in ENHANCER_MODELS:
        path = weights_dir / enhancer_file(module)
        if not path.exists():
            raise WeightsMissing(_missing_sentence(weights_dir, [path.name]))
        return ModuleSource(module, path, slot="params_ema")
    if module in MAPPING_FILES:
        path = weights_dir / MAPPING_FILES[module]
        if not path.exists():
            raise WeightsMissing(_missing_sentence(weights_dir, [path.name]))
        return ModuleSource(module, path, slot="mapping")
    bundle = weights_dir / bundle_name(size)
    prefixes = _bundle_prefixes()
    if bundle.exists() and module in prefixes:
        return ModuleSource(module, bundle, prefix=prefixes[module])
    slots = _pth_slots()
    if size == 256 and module in slots:
        fname, slot = slots[module]
        if (weights_dir / fname).exists():
            return ModuleSource(module, weights_dir / fname, slot=slot)
        raise WeightsMissing(_missing_sentence(weights_dir, [bundle.name, fname], either=True))
    raise WeightsMissing(_missing_sentence(weights_dir, [bundle.name]))


def _missing_sentence(weights_dir: Path, names: list[str], either: bool = False) -> str:
    what = " or ".join(names) if either else ", ".join(names)
    return (
        f"checkpoint {what} is not in {weights_dir}; run `sadtalker weights download --dir {weights_dir}` "
        f"(or `sadtalker weights synthetic {weights_dir}` for a pipeline check without real weights)"
    )


# --- reading --------------------------------------------------------------------------------------
def _torch_load(path: Path) -> dict:
    import pickle
    import zipfile

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path.name} cannot be read as a PyTorch checkpoint (truncated or corrupt?): {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, expected a dict of state dicts")
    return obj


def read_module(source: ModuleSource) -> dict[str, torch.Tensor]:
    """The module-local state dict of one module, read from its file."""
    path = source.path
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                keys = [k for k in f.keys() if k.startswith(source.prefix)]
                state = {k[len(source.prefix) :]: f.get_tensor(k) for k in keys}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name} cannot be read as safetensors (truncated or corrupt?): {exc}") from None
        if not state:
            raise CheckpointError(f"{path.name} has no tensors with prefix '{source.prefix}' ({source.module})")
        return state
    obj = _torch_load(path)
    if source.module in ENHANCER_MODELS:
        slot = "params_ema" if "params_ema" in obj else "params" if "params" in obj else None
    else:
        slot = source.slot if source.slot in obj else None
    if slot is None or not isinstance(obj[slot], dict):
        want = "'params_ema' or 'params'" if source.module in ENHANCER_MODELS else f"'{source.slot}'"
        raise CheckpointError(
            f"{path.name} is not in the expected layout for {source.module}: no {want} entry "
            f"(top-level keys: {sorted(map(str, obj))[:8]})"
        )
    return dict(obj[slot])


def load_module_state(weights_dir: Path, module: str, size: int = 256) -> dict[str, torch.Tensor]:
    """Locate, read and check one module's state dict against the manifest."""
    source = locate_module(weights_dir, module, size)
    state = read_module(source)
    check_state(state, module, source.path.name)
    return state


# --- checking -------------------------------------------------------------------------------------
def _describe_mismatch(
    where: str, missing: Iterable[str], unexpected: Iterable[str], bad_shapes: list[str]
) -> str | None:
    missing, unexpected = list(missing), list(unexpected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
    if bad_shapes:
        parts.append(f"{len(bad_shapes)} mis-shaped (first: {', '.join(bad_shapes[:3])})")
    return f"{where}: " + "; ".join(parts) if parts else None


def check_state(state: dict, module: str, filename: str) -> None:
    """Keys, shapes and dtypes must equal the manifest's, else CheckpointError naming them."""
    specs = {s.key: s for s in module_specs(module)}
    bad = []
    for key in specs.keys() & state.keys():
        got = tuple(state[key].shape)
        if got != specs[key].shape:
            bad.append(f"{key} {list(got)} != {list(specs[key].shape)}")
        elif _dtype_name(state[key]) != specs[key].dtype:
            bad.append(f"{key} dtype {_dtype_name(state[key])} != {specs[key].dtype}")
    msg = _describe_mismatch(
        f"{filename}, module {module}",
        [k for k in specs if k not in state],
        [k for k in state if k not in specs],
        bad,
    )
    if msg:
        raise CheckpointError(msg)


def _dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def load_strict(net: torch.nn.Module, state: dict, *, filename: str, module: str) -> None:
    """``net.load_state_dict(state, strict=True)`` with an error that names the file, module and keys."""
    own = net.state_dict()
    bad = [
        f"{k} {list(state[k].shape)} != {list(own[k].shape)}"
        for k in own.keys() & state.keys()
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    msg = _describe_mismatch(
        f"{filename}, module {module}", [k for k in own if k not in state], [k for k in state if k not in own], bad
    )
    if msg:
        raise CheckpointError(msg)
    net.load_state_dict(state, strict=True)


# --- writing (synthetic weights in the official layouts) ------------------------------------------
def write_sadtalker_layout(out_dir: Path, layout: str, modules: dict[str, dict[str, np.ndarray]]) -> list[Path]:
    """Write ``modules`` (module -> state) as the files of ``layout``. Returns the paths written."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layouts = sadtalker_manifest()["layouts"]
    written = []
    pth_files = dict(layouts["v0.0.2_pth"]["files"])
    pth_files.pop("wav2lip.pth")
    if layout.startswith("safetensors"):
        from safetensors.numpy import save_file

        lay = layouts[layout]
        flat = {e["prefix"] + k: v for e in lay["entries"] for k, v in modules[e["module"]].items()}
        written.append(_atomic(out_dir / lay["file"], lambda p: save_file(flat, str(p))))
        pth_files = {f: d for f, d in pth_files.items() if f.startswith("mapping_")}
    elif layout != "v0.0.2_pth":
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(SADTALKER_LAYOUTS)}")
    for fname, desc in pth_files.items():
        ckpt = {
            slot: 0 if slot == "epoch" else {k: torch.from_numpy(v) for k, v in modules[m].items()}
            for slot, m in desc["nesting"].items()
        }
        written.append(_atomic(out_dir / fname, lambda p, c=ckpt: torch.save(c, p)))
    return written


def modules_of_layout(layout: str) -> list[str]:
    layouts = sadtalker_manifest()["layouts"]
    if layout.startswith("safetensors"):
        mods = [e["module"] for e in layouts[layout]["entries"]]
        return mods + ["mapping_crop", "mapping_full"]
    return [m for m, _ in _pth_slots().items()]


def write_enhancer_file(out_dir: Path, model: str, state: dict[str, np.ndarray]) -> Path:
    import torch

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    ckpt = {"params_ema": {k: torch.from_numpy(v) for k, v in state.items()}}
    return _atomic(Path(out_dir) / enhancer_file(model), lambda p: torch.save(ckpt, p))


def _atomic(path: Path, write) -> Path:
    """Write to a temporary name, then rename: a reader never sees a half-written checkpoint."""
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    tmp.replace(path)
    return path

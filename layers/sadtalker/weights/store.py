"""The model store: one directory of checkpoint files, what a job needs from it, and how to fill it.

Resolution order of the directory: an explicit path (CLI ``--weights``), ``$SADTALKER_WEIGHTS``, then
``~/.cache/sadtalker/weights``. A directory written by ``sadtalker weights synthetic`` holds a marker
file ``SYNTHETIC`` so that everything made with it can say so.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError, WeightsMissing
from .checkpoints import (
    MAPPING_FILES,
    bundle_name,
    check_state,
    enhancer_file,
    load_module_state,
    load_strict,
    locate_module,
    modules_of_layout,
    read_module,
    write_enhancer_file,
    write_sadtalker_layout,
)
from .fill import fill_module
from .manifest import ENHANCER_MODELS

if TYPE_CHECKING:
    import torch

ENV_VAR = "SADTALKER_WEIGHTS"
SYNTHETIC_MARKER = "SYNTHETIC"
# A directory whose PROFILE file says "reduced" holds synthetic weights for the reduced network
# configuration (same code, fewer channels) that keeps pipeline tests fast; absent means "full".
PROFILE_FILE = "PROFILE"

# Public release files (the URLs SadTalker and GFPGAN themselves use). Sizes are only checked against
# the server's Content-Length; every downloaded checkpoint is then checked key by key against the manifest.
_SADTALKER_RELEASE = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/"
RELEASE_URLS: dict[str, str] = {
    "SadTalker_V0.0.2_256.safetensors": _SADTALKER_RELEASE + "SadTalker_V0.0.2_256.safetensors",
    "SadTalker_V0.0.2_512.safetensors": _SADTALKER_RELEASE + "SadTalker_V0.0.2_512.safetensors",
    "mapping_00229-model.pth.tar": _SADTALKER_RELEASE + "mapping_00229-model.pth.tar",
    "mapping_00109-model.pth.tar": _SADTALKER_RELEASE + "mapping_00109-model.pth.tar",
    "GFPGANv1.4.pth": "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
    "RealESRGAN_x2plus.pth": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
    # face-alignment's own detector and landmark files (the landmarks backend reads them from the store)
    "s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
    "2DFAN4-11f355bf06.pth.tar": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
}
# Files without a manifest: only the transfer size is checked.
_UNMANIFESTED = ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")


def default_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "sadtalker" / "weights")


def resolve_dir(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit) if explicit else default_dir()


@dataclass(frozen=True)
class Requirement:
    """One file a job setting needs; ``alternatives`` can stand in for it (the old .pth set)."""

    file: str
    why: str
    alternatives: tuple[str, ...] = ()


def requirements(size: int = 256, preprocess: str = "crop", enhancer: str = "", background_enhancer: str = "") -> list[Requirement]:
    """The files a job configuration needs (the README's Weights table lists them)."""
    old = ("auido2exp_00300-model.pth", "auido2pose_00140-model.pth", "epoch_20.pth", "facevid2vid_00189-model.pth.tar")
    reqs = [
        Requirement(bundle_name(size), f"all {size} px networks", old if size == 256 else ()),
        Requirement(MAPPING_FILES["mapping_full" if "full" in preprocess else "mapping_crop"], f"MappingNet for preprocess={preprocess}"),
    ]
    if enhancer:
        reqs.append(Requirement(enhancer_file("gfpgan_v1.4"), f"enhancer={enhancer}"))
        if background_enhancer:
            reqs.append(Requirement(enhancer_file("realesrgan_x2plus"), f"background_enhancer={background_enhancer}"))
    return reqs


@dataclass(frozen=True)
class ModelStore:
    root: Path

    @classmethod
    def open(cls, explicit: str | os.PathLike | None = None) -> ModelStore:
        return cls(resolve_dir(explicit))

    @property
    def synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()

    @property
    def profile(self) -> str:
        """"full" (official network sizes) or "reduced" (pipeline tests only)."""
        path = self.root / PROFILE_FILE
        return path.read_text().strip() if path.exists() else "full"

    def has(self, req: Requirement) -> bool:
        return (self.root / req.file).exists() or (
            bool(req.alternatives) and all((self.root / a).exists() for a in req.alternatives)
        )

    def missing(self, reqs: list[Requirement]) -> list[Requirement]:
        return [r for r in reqs if not self.has(r)]

    def require(self, reqs: list[Requirement]) -> None:
        gone = self.missing(reqs)
        if gone:
            names = ", ".join(r.file for r in gone)
            raise WeightsMissing(
                f"missing checkpoint(s) in {self.root}: {names}; run `sadtalker weights download --dir {self.root}` "
                f"(or `sadtalker weights synthetic {self.root}` for a pipeline check without real weights)"
            )

    def state_dict(self, module: str, size: int = 256) -> dict:
        return load_module_state(self.root, module, size)

    def load_into(self, net: torch.nn.Module, module: str, size: int = 256) -> None:
        """Strictly load ``module`` from this store into ``net``. Official (full) weights are also checked
        against the manifest; reduced synthetic weights differ from it by design, so for them the strict
        load against the reduced network is the check."""
        source = locate_module(self.root, module, size)
        state = read_module(source)
        if self.profile != "reduced":
            check_state(state, module, source.path.name)
        load_strict(net, state, filename=source.path.name, module=module)

    def fingerprints(self, reqs: list[Requirement]) -> dict[str, dict]:
        """name -> {bytes, sha256} of the files that serve ``reqs`` (what a result was made with)."""
        out = {}
        for req in reqs:
            names = [req.file] if (self.root / req.file).exists() else list(req.alternatives)
            for name in names:
                path = self.root / name
                if path.exists():
                    st = path.stat()
                    out[name] = {"bytes": st.st_size, "sha256": _sha256_file(str(path), st.st_size, st.st_mtime_ns)}
        return out

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*") if p.is_file()) if self.root.exists() else []


@lru_cache(maxsize=64)
def _sha256_file(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per file version and process (a 725 MB bundle takes ~2 s)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def write_synthetic(out_dir: Path, layouts: tuple[str, ...] = ("safetensors_256",), enhancers: bool = True) -> list[Path]:
    """Write synthetic checkpoints (fill spec values) in the official layouts, plus the marker."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cache: dict[str, dict] = {}
    for layout in layouts:
        mods = {}
        for m in modules_of_layout(layout):
            if m not in cache:
                cache[m] = fill_module(m)
            mods[m] = cache[m]
        written += write_sadtalker_layout(out_dir, layout, mods)
    if enhancers:
        for model in ENHANCER_MODELS:
            written.append(write_enhancer_file(out_dir, model, fill_module(model)))
    (out_dir / SYNTHETIC_MARKER).write_text(
        "Synthetic weights (parity-kit fill spec): pipeline checks only, not a real animation.\n"
    )
    return written


def download(names: list[str], out_dir: Path, progress: Callable[[str, int, int], None] | None = None, timeout: float = 20.0) -> list[Path]:
    """Fetch release files into ``out_dir`` (size-checked, then key-checked). Offline: fails fast."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for name in names:
        if name not in RELEASE_URLS:
            raise WeightsMissing(f"no public release URL is known for {name}")
        dest = out_dir / name
        tmp = dest.with_name(name + ".partial")
        try:
            with urllib.request.urlopen(RELEASE_URLS[name], timeout=timeout) as resp, open(tmp, "wb") as fh:
                total = int(resp.headers.get("Content-Length") or 0)
                got = 0
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    got += len(chunk)
                    if progress:
                        progress(name, got, total)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            raise WeightsMissing(
                f"cannot download {name} from {RELEASE_URLS[name]} ({exc}); this machine looks offline: "
                f"copy the file into {out_dir} by hand, or use `sadtalker weights synthetic {out_dir}`"
            ) from None
        if total and got != total:
            tmp.unlink(missing_ok=True)
            raise CheckpointError(f"{name}: received {got} bytes, the server announced {total}")
        tmp.replace(dest)
        _verify_download(dest)
        done.append(dest)
    return done


def _verify_download(path: Path) -> None:
    """Every module the file should hold must match the manifest exactly."""
    name = path.name
    if name in _UNMANIFESTED:
        return
    for model in ENHANCER_MODELS:
        if enhancer_file(model) == name:
            load_module_state(path.parent, model)
            return
    for module, fname in MAPPING_FILES.items():
        if fname == name:
            load_module_state(path.parent, module)
            return
    size = 512 if "512" in name else 256
    for module in modules_of_layout(f"safetensors_{size}"):
        if module not in MAPPING_FILES:
            load_module_state(path.parent, module, size)

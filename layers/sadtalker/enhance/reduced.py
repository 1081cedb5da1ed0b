"""A reduced enhancer store: the official file names holding synthetic weights of the reduced networks.

Pipeline tests point a ModelStore at such a directory (``PROFILE`` says ``reduced``) so GFPGAN and
Real-ESRGAN run with 1/8 of their channels: the same code paths at a fraction of the cost.
"""

from __future__ import annotations

from pathlib import Path

from ..nets.gfpgan import GFPGANv1Clean
from ..nets.rrdbnet import RRDBNet
from ..weights.checkpoints import write_enhancer_file
from ..weights.fill import fill_enhancer_specs
from ..weights.store import PROFILE_FILE, SYNTHETIC_MARKER
from .loaders import GFPGAN_MODEL, REALESRGAN_MODEL, gfpgan_config, rrdbnet_config

REDUCED = "reduced"


def reduced_enhancer_states() -> dict[str, dict]:
    """model name -> numpy state dict of the reduced network, filled with the kit's enhancer rules."""
    nets = {GFPGAN_MODEL: GFPGANv1Clean(gfpgan_config(REDUCED)), REALESRGAN_MODEL: RRDBNet(rrdbnet_config(REDUCED))}
    return {
        model: fill_enhancer_specs(model, {k: tuple(v.shape) for k, v in net.state_dict().items()})
        for model, net in nets.items()
    }


def write_reduced_enhancers(out_dir: str | Path) -> list[Path]:
    """Write GFPGANv1.4.pth and RealESRGAN_x2plus.pth (reduced, synthetic) plus the PROFILE and SYNTHETIC markers.

    Other files in the directory (e.g. reduced renderer weights) are left alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_enhancer_file(out, model, state) for model, state in reduced_enhancer_states().items()]
    (out / PROFILE_FILE).write_text(REDUCED + "\n")
    marker = out / SYNTHETIC_MARKER
    if not marker.exists():
        marker.write_text("Synthetic weights (parity-kit fill spec, reduced networks): pipeline checks only.\n")
    return written

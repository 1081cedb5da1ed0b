"""Reduced renderer configuration and its synthetic model store (fast pipeline tests only).

Same network code as the official configuration with channel widths / 8, 4 keypoints and a feature depth of
4 (the 7x7x7 mask convolution over 16 motions x depth 16 would otherwise dominate). The store holds the
official file names: the renderer modules (kp_extractor, generator, mapping_crop, mapping_full) in their
reduced shapes, every other module (3DMM, audio nets) at full size, filled with the parity kit's rule, plus
``SYNTHETIC`` and ``PROFILE`` = ``reduced`` markers (``ModelStore.profile``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..nets.dense_motion import DenseMotionConfig
from ..nets.generator import GeneratorConfig
from ..nets.keypoint_detector import KPDetectorConfig
from ..nets.mapping import MappingConfig

REDUCED_KP = KPDetectorConfig(block_expansion=4, max_features=128, reshape_channel=128 * 4, reshape_depth=4, num_kp=4)
REDUCED_GENERATOR = GeneratorConfig(
    num_kp=4,
    block_expansion=8,
    max_features=64,
    feature_channel=16,
    reshape_channel=16,
    reshape_depth=4,
    dense_motion=DenseMotionConfig(
        block_expansion=4, max_features=128, num_kp=4, feature_channel=16, reshape_depth=4, compress=1
    ),
    decoder_out=8,
    spade_hidden=16,
)


def reduced_mapping(coeff_nc: int) -> MappingConfig:
    return MappingConfig(coeff_nc=coeff_nc, descriptor_nc=128, num_kp=4)


def reduced_module_states() -> dict[str, dict[str, np.ndarray]]:
    """Fill-rule tensors for the reduced renderer modules, keyed by module name."""
    import torch

    from ..nets.generator import OcclusionAwareSPADEGenerator
    from ..nets.keypoint_detector import KPDetector
    from ..nets.mapping import MappingNet
    from ..weights.fill import SADTALKER_GAINS, fill_specs
    from ..weights.manifest import TensorSpec

    nets: dict[str, torch.nn.Module] = {
        "kp_extractor": KPDetector(REDUCED_KP),
        "generator": OcclusionAwareSPADEGenerator(REDUCED_GENERATOR),
        "mapping_crop": MappingNet(reduced_mapping(70)),
        "mapping_full": MappingNet(reduced_mapping(73)),
    }
    out = {}
    for name, net in nets.items():
        specs = [TensorSpec(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in net.state_dict().items()]
        out[name] = fill_specs(specs, SADTALKER_GAINS.get(name, 1.0))
    return out


def write_reduced_weights(out_dir: str | Path, sizes: tuple[int, ...] = (256,)) -> Path:
    """Write a reduced-profile synthetic model store in the official safetensors layout(s)."""
    from ..weights.checkpoints import modules_of_layout, write_sadtalker_layout
    from ..weights.fill import fill_module
    from ..weights.store import PROFILE_FILE, SYNTHETIC_MARKER

    out_dir = Path(out_dir)
    modules = reduced_module_states()
    for size in sizes:
        layout = f"safetensors_{size}"
        for m in modules_of_layout(layout):
            if m not in modules:
                modules[m] = fill_module(m)
        write_sadtalker_layout(out_dir, layout, modules)
    (out_dir / SYNTHETIC_MARKER).write_text(
        "Synthetic weights (parity-kit fill rule), REDUCED renderer: pipeline tests only, not a real animation.\n"
    )
    (out_dir / PROFILE_FILE).write_text("reduced\n")
    return out_dir

"""Render precision: float32 (default, the parity path) or bfloat16 on CPUs that compute it natively.

Decision (docs/performance.md): ``precision="bf16"`` on a CPU without native bf16 (no AVX512_BF16 / AMX-BF16)
falls back to float32 with a warning instead of failing the job. The parameter is validated before any CPU
is known (ValidateJob is a light function on other hardware; a Lambda may land on an older host), emulated
bf16 would be slower AND less accurate than float32, and the fallback gives the exact default result.

No ``precision="auto"`` (decided in issue 17, docs/performance.md): "bf16" already means "bf16 where the CPU
has it, else the exact fp32 path, recorded in the result", so an opt-in "auto" would be a second name for it;
making bf16 the default would trade the parity-tested fp32 frames (and frames that do not depend on which CPU
a retried chunk lands on) for an error of PSNR ~44 dB on the renderer and 47 / 51 dB on GFPGAN / RealESRGAN
(synthetic weights, kit inputs), not yet checked on the official checkpoints.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512_BF16 or AMX-BF16) that oneDNN uses."""
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def effective_precision(requested: str) -> str:
    """The precision the renderer will use for ``requested`` ("fp32" | "bf16") on this CPU."""
    if requested == "bf16" and not native_bf16():
        log.warning("precision=bf16 requested but this CPU has no native bf16 (%s): rendering in fp32",
                    " / ".join(BF16_FLAGS))
        return "fp32"
    return requested

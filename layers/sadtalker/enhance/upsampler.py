"""Real-ESRGAN x2 background upsampling, tiled as RealESRGANer does it, with exact reuse of unchanged tiles.

The tile maths follows realesrgan 0.3.0's RealESRGANer: reflect pre-pad and mod-pad (to even
sides for x2), a grid of ``tile`` x ``tile`` tiles from the top-left, each run with ``tile_pad`` extra
context pixels (clipped at the image border), only the un-padded part written to the output. Tiled and
untiled results differ slightly at tile seams; the goldens pin the tiled maths, so the seams are part
of the expected output.

Reuse: a tile's output depends only on its padded input piece (the network runs on that piece alone,
batch 1). When a piece is bit-identical to the one the same tile had in the previous frame, the stored
output is copied instead of recomputed. This is exact (the test compares with a full recomputation bit
for bit). In full/extfull modes the frame is the still photo with the animated face pasted in, so only
the tiles touching the face region change; a smaller tile than SadTalker's 400 makes that region
cheaper (see ``REUSE_TILE``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# SadTalker's RealESRGANer arguments (scale 2, tile 400, tile_pad 10, pre_pad 0).
SADTALKER_TILE, SADTALKER_TILE_PAD, SADTALKER_PRE_PAD = 400, 10, 0
# Tile used when unchanged tiles are reused (full/extfull). Smaller tiles confine the recomputation to
# the face box but pay (T+2*pad)^2/T^2 context per tile (1.10 at 400, 1.21 at 200, 1.34 at 128).
# Measured network input per frame with real paste-back frames (benchmarks/enhance.py, tile_work), as a
# fraction of recomputing every tile of 400: photo 512 px: 0.59 (400), 0.50 (256), 0.32 (200), 0.34 (128);
# photo 1024 px: 0.30 (400), 0.26 (256), 0.13 (200), 0.14 (128). Hence 200. The seams move with the tile
# size (tiled vs untiled raw outputs differ by up to ~4e-3, about one uint8 level), which is why the tile
# parameters are part of the golden and why crop modes keep SadTalker's 400.
REUSE_TILE = 200


@dataclass
class TileStats:
    computed: int = 0
    reused: int = 0
    computed_px: int = 0  # padded input pixels run through the network (the cost measure)


@dataclass
class _TileMemo:
    piece: np.ndarray  # the padded input piece (float32, CHW) the output was computed from
    out: torch.Tensor  # the un-padded part of the network output for that piece


@dataclass
class TiledUpsampler:
    """``net`` is an RRDBNet x2; ``tile=0`` runs the whole image at once."""

    net: torch.nn.Module
    scale: int = 2
    tile: int = SADTALKER_TILE
    tile_pad: int = SADTALKER_TILE_PAD
    pre_pad: int = SADTALKER_PRE_PAD
    reuse: bool = False
    stats: TileStats = field(default_factory=TileStats)
    _memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.tile and (self.tile % 2 or self.tile_pad % 2) and self.scale == 2:
            raise ValueError("tile and tile_pad must be even for the x2 network (it pixel-unshuffles by 2)")

    # --- the RealESRGANer steps ------------------------------------------------------------------
    def raw(self, img_rgb: np.ndarray) -> torch.Tensor:
        """HWC float32 RGB in [0,1] -> (1,3,H*s,W*s) network output (pads removed), not clamped."""
        x = torch.from_numpy(np.ascontiguousarray(img_rgb.transpose(2, 0, 1))).float().unsqueeze(0)
        if self.pre_pad:
            x = F.pad(x, (0, self.pre_pad, 0, self.pre_pad), "reflect")
        mod = 2 if self.scale == 2 else 4 if self.scale == 1 else 1
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % mod, (-w) % mod
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), "reflect")
        with torch.inference_mode():
            if self.tile > 0:
                out = self._tiled(x)
            else:
                out = self.net(x)
                self.stats.computed += 1
                self.stats.computed_px += x.shape[-2] * x.shape[-1]
        s = self.scale
        H, W = out.shape[-2:]
        out = out[:, :, : H - pad_h * s, : W - pad_w * s]
        if self.pre_pad:
            H, W = out.shape[-2:]
            out = out[:, :, : H - self.pre_pad * s, : W - self.pre_pad * s]
        return out

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        s, t, p = self.scale, self.tile, self.tile_pad
        out = x.new_zeros((1, c, h * s, w * s))
        x_np = x[0].numpy() if self.reuse else None
        for ty in range(math.ceil(h / t)):
            for tx in range(math.ceil(w / t)):
                y0, x0 = ty * t, tx * t
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                py0, px0 = max(y0 - p, 0), max(x0 - p, 0)
                py1, px1 = min(y1 + p, h), min(x1 + p, w)
                key = (h, w, ty, tx)
                memo = self._memo.get(key) if self.reuse else None
                if memo is not None and np.array_equal(memo.piece, x_np[:, py0:py1, px0:px1]):
                    part = memo.out
                    self.stats.reused += 1
                else:
                    res = self.net(x[:, :, py0:py1, px0:px1])
                    oy, ox = (y0 - py0) * s, (x0 - px0) * s
                    part = res[:, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
                    self.stats.computed += 1
                    self.stats.computed_px += (py1 - py0) * (px1 - px0)
                    if self.reuse:
                        self._memo[key] = _TileMemo(x_np[:, py0:py1, px0:px1].copy(), part.clone())
                out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = part
        return out

    def enhance(self, img_bgr: np.ndarray) -> np.ndarray:
        """RealESRGANer.enhance(img, outscale=scale) for a uint8 BGR image -> uint8 BGR, ``scale`` x larger."""
        if img_bgr.dtype != np.uint8 or img_bgr.ndim != 3 or img_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 image, got {img_bgr.shape} {img_bgr.dtype}")
        rgb = img_bgr[:, :, ::-1].astype(np.float32) / np.float32(255.0)
        return raw_to_bgr_u8(self.raw(rgb))

    def forget(self) -> None:
        self._memo.clear()


def raw_to_bgr_u8(raw: torch.Tensor) -> np.ndarray:
    """RealESRGANer's post step: clamp to [0,1], RGB->BGR, round(v*255) -> uint8."""
    v = raw[0].clamp(0, 1).numpy()
    return np.ascontiguousarray((v[::-1].transpose(1, 2, 0) * np.float32(255.0)).round().astype(np.uint8))

"""OcclusionAwareSPADEGenerator: source image + source/driving keypoints -> rendered face.

Checkpoint module ``generator``. The network is split in two halves so a
renderer can do the per-job work once: ``encode_source`` (image -> 3-D feature volume and its compressed
copy for the dense motion net) and ``render`` (keypoints -> frame), which together equal the original
forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .dense_motion import DenseMotionConfig, DenseMotionNetwork
from .render_blocks import (
    DownBlock2d,
    ResBlock3d,
    SameBlock2d,
    SpectralConv2d,
    fold_all_batchnorms,
    lowp_conv,
    lowp_twin,
    lowp_weight,
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Defaults are facerender.yaml's ``generator_params`` (the 256 and 512 releases share them)."""

    image_channel: int = 3
    feature_channel: int = 32
    num_kp: int = 15
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    decoder_out: int = 64
    spade_hidden: int = 128
    decoder_middle_blocks: int = 6


def upsampled_conv3x3_weights(weight: torch.Tensor, bias: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights that compute ``conv3x3(pad 1)(nearest_upsample(x, scale))`` at x's resolution.

    Output row ``scale * i + a`` of the upsampled conv reads upsampled rows ``scale * i + a + dy`` (dy = -1, 0, 1),
    i.e. original rows ``i + floor((a + dy) / scale)``: only two distinct rows, ``i - 1, i`` for phase a = 0
    and ``i, i + 1`` (or just ``i``) for the others. So every phase (a, b) is a 2x2 conv over the original
    image with summed taps, 4 instead of 9 multiply-adds per output pixel (the same algebra, summed in
    float64 and rounded once). Returns (scale^2 * C_out, C_in, 2, 2) weights and the repeated bias, phases
    in (a, b) order, for a 2x2 conv with padding 1 (see ``upsampled_conv3x3``).
    """
    w = weight.detach().double()
    phases = []
    for a in range(scale):
        for b in range(scale):
            k = torch.zeros(w.shape[0], w.shape[1], 2, 2, dtype=torch.float64)
            row0, col0 = (-1 if a == 0 else 0), (-1 if b == 0 else 0)  # first original row/column of the window
            for dy in (-1, 0, 1):
                r = (a + dy) // scale - row0
                for dx in (-1, 0, 1):
                    c = (b + dx) // scale - col0
                    k[:, :, r, c] += w[:, :, dy + 1, dx + 1]
            phases.append(k)
    return torch.cat(phases).to(weight.dtype), bias.detach().repeat(scale * scale)


def upsampled_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, scale: int) -> torch.Tensor:
    """conv3x3(pad 1) of nearest_upsample(x, scale) with the weights of ``upsampled_conv3x3_weights``."""
    bsz, _, h, w = x.shape
    cout = weight.shape[0] // (scale * scale)
    # output index k of the padded 2x2 conv covers original rows k - 1, k
    y = lowp_conv(x, weight, bias, padding=1).view(bsz, scale, scale, cout, h + 1, w + 1)
    out = y.new_empty(bsz, cout, h, scale, w, scale)
    for a in range(scale):
        r = 0 if a == 0 else 1
        for b in range(scale):
            c = 0 if b == 0 else 1
            out[:, :, :, a, :, b] = y[:, a, b, :, r : r + h, c : c + w]
    return out.view(bsz, cout, h * scale, w * scale)


class SPADE(nn.Module):
    """InstanceNorm(x) * (1 + gamma(S)) + beta(S), S resized (nearest) to x's size.

    ``optimize()`` switches to an equivalent inference form: the shared conv runs on the segmentation map at
    its own resolution (``upsampled_conv3x3``) instead of on its nearest-upsampled copy, and gamma and beta
    come from one conv with both kernels stacked.
    """

    def __init__(self, channels: int, label_nc: int, hidden: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)
        self._fast: dict[str, torch.Tensor] | None = None
        self._upsampled: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._lowp: torch.dtype | None = None  # set on a reduced-precision twin (``to_lowp``)

    @torch.no_grad()
    def optimize(self) -> None:
        """Precompute the stacked gamma/beta kernel (inference only; the sub-pixel kernels come per scale)."""
        self._fast = {
            "gb_weight": torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight]).detach(),
            "gb_bias": torch.cat([self.mlp_gamma.bias, self.mlp_beta.bias]).detach(),
        }
        self._upsampled = {}

    @torch.no_grad()
    def to_lowp(self, dtype: torch.dtype) -> None:
        """Reduced-precision twin (``lowp_twin``): kernels derived in float32, then cast once to ``dtype``."""
        if self._fast is not None:
            self._fast = {"gb_weight": lowp_weight(self._fast["gb_weight"], dtype), "gb_bias": self._fast["gb_bias"]}
        conv = self.mlp_shared[0]
        self._shared_fp32 = (conv.weight.detach().clone(), conv.bias.detach().clone())
        self._upsampled = {s: (lowp_weight(w, dtype), b) for s, (w, b) in self._upsampled.items()}
        self._lowp = dtype

    def _shared(self, seg: torch.Tensor, size: torch.Size) -> torch.Tensor:
        conv = self.mlp_shared[0]
        scale = size[0] // seg.shape[2]
        if scale == 1 and tuple(size) == tuple(seg.shape[2:]):
            return F.relu(conv(seg))
        if tuple(size) != (seg.shape[2] * scale, seg.shape[3] * scale):  # not an integer nearest upsample
            return F.relu(conv(F.interpolate(seg, size=size, mode="nearest")))
        if scale not in self._upsampled:
            if self._lowp is None:
                self._upsampled[scale] = upsampled_conv3x3_weights(conv.weight, conv.bias, scale)
            else:  # the summed taps from the float32 kernel, rounded once
                w, b = upsampled_conv3x3_weights(*self._shared_fp32, scale)
                self._upsampled[scale] = lowp_weight(w, self._lowp), b
        return F.relu(upsampled_conv3x3(seg, *self._upsampled[scale], scale))

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        if self._fast is not None:
            actv = self._shared(seg, x.shape[2:])
            gamma, beta = lowp_conv(actv, self._fast["gb_weight"], self._fast["gb_bias"], padding=1).chunk(2, dim=1)
            return normalized * (1 + gamma) + beta
        if seg.shape[2:] != x.shape[2:]:
            seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralConv2d(fin, fmid, kernel_size=3, padding=1)
        self.conv_1 = SpectralConv2d(fmid, fout, kernel_size=3, padding=1)
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmid, label_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(fin, fout, kernel_size=1, bias=False)
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    def __init__(self, ic: int, oc: int, hidden: int, middle: int) -> None:
        super().__init__()
        self.middle = middle
        self.fc = nn.Conv2d(ic, 2 * ic, kernel_size=3, padding=1)
        for i in range(middle):
            setattr(self, f"G_middle_{i}", SPADEResBlock(2 * ic, 2 * ic, ic, hidden))
        self.up_0 = SPADEResBlock(2 * ic, ic, ic, hidden)
        self.up_1 = SPADEResBlock(ic, oc, ic, hidden)
        self.conv_img = nn.Conv2d(oc, 3, kernel_size=3, padding=1)

    def forward(self, seg: torch.Tensor) -> torch.Tensor:
        x = self.fc(seg)
        for i in range(self.middle):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


@dataclass
class SourceFeatures:
    """Per-job generator state: the 3-D feature volume (1, C, d, h, w) and its compressed copy."""

    feature_3d: torch.Tensor
    compressed: torch.Tensor


def LOWP_KEEP_FP32(dm: DenseMotionNetwork) -> tuple[nn.Module, ...]:  # noqa: N802 - a policy table
    """The dense-motion modules whose convolutions stay float32 on the reduced-precision path."""
    return (dm.hourglass.decoder.conv, dm.mask, dm.occlusion)


class OcclusionAwareSPADEGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion)
        be, mf = cfg.block_expansion, cfg.max_features
        self.first = SameBlock2d(cfg.image_channel, be)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(mf, be * 2**i), min(mf, be * 2 ** (i + 1))) for i in range(cfg.num_down_blocks)
        )
        self.second = nn.Conv2d(min(mf, be * 2**cfg.num_down_blocks), mf, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(cfg.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(cfg.reshape_channel))
        out = be * 2**cfg.num_down_blocks
        self.third = SameBlock2d(mf, out, lrelu=True)
        self.fourth = nn.Conv2d(out, out, kernel_size=1)
        self.decoder = SPADEDecoder(out, cfg.decoder_out, cfg.spade_hidden, cfg.decoder_middle_blocks)

    @torch.no_grad()
    def optimize_for_inference(self, fold_norms: bool = True, fast_spade: bool = True) -> None:
        """Load-time rewrites with the same algebra (call after loading the weights; inference only).

        ``fold_norms``: every conv -> BatchNorm pair becomes one conv. ``fast_spade``: SPADE's shared conv on
        the segmentation map's own resolution, gamma/beta in one conv (see ``SPADE``).
        """
        if fold_norms:
            fold_all_batchnorms(self)
        if fast_spade:
            for module in self.modules():
                if isinstance(module, SPADE):
                    module.optimize()

    def encode_source(self, source_image: torch.Tensor) -> SourceFeatures:
        """Everything that depends on the source image only."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        feature_3d = self.resblocks_3d(out.view(b, self.cfg.reshape_channel, self.cfg.reshape_depth, h, w))
        return SourceFeatures(feature_3d, self.dense_motion_network.compress_source(feature_3d))

    def render(
        self, source: SourceFeatures, kp_driving: torch.Tensor, kp_source: torch.Tensor, precision: str = "fp32"
    ) -> dict:
        """Frames for a batch of driving keypoints (B, K, 3); the source state is broadcast over B.

        Returns ``prediction`` (B, 3, S, S) plus the dense-motion outputs, all float32. ``precision="bf16"`` runs
        the per-frame networks' convolutions on their bfloat16 twin (``lowp_parts``), everything else float32.
        """
        if precision == "fp32":
            parts = self
        elif precision == "bf16":
            parts = self.lowp_parts()
        else:
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        b = kp_driving.shape[0]
        feature_3d = source.feature_3d.expand(b, *source.feature_3d.shape[1:])
        compressed = source.compressed.expand(b, *source.compressed.shape[1:])
        kp_source = kp_source.expand(b, *kp_source.shape[1:])
        motion = parts.dense_motion_network(compressed, kp_driving, kp_source)
        warped = F.grid_sample(feature_3d, motion["deformation"], align_corners=False)
        _, c, d, h, w = warped.shape
        out = parts.fourth(parts.third(warped.reshape(b, c * d, h, w)))
        occlusion = motion["occlusion_map"]
        if occlusion.shape[2:] != out.shape[2:]:
            occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
        out = out * occlusion
        return {"prediction": parts.decoder(out), **motion}

    def lowp_parts(self, dtype: torch.dtype = torch.bfloat16) -> nn.ModuleDict:
        """The per-frame networks with their convolutions in ``dtype``, weights cast once (built on first use).

        Kept in float32 (``LOWP_KEEP_FP32``; measured, docs/performance.md): the dense-motion hourglass's last
        convolution and the mask and occlusion convolutions that read its output. The deformation field is where
        bf16 rounding costs most image quality (synthetic weights, kit inputs, bf16 against fp32: PSNR 36.1 dB
        with every conv in bf16, 43.1 dB with these 126 of 1,061 GFLOP per frame in float32).
        """
        twin = self.__dict__.get("_lowp_parts")
        if twin is None or twin.dtype != dtype:
            dm = self.dense_motion_network
            parts = nn.ModuleDict({"dense_motion_network": dm, "third": self.third, "fourth": self.fourth,
                                   "decoder": self.decoder})
            twin = lowp_twin(parts, keep_fp32=LOWP_KEEP_FP32(dm), dtype=dtype)
            twin.dtype = dtype
            self.__dict__["_lowp_parts"] = twin  # not a registered submodule: state_dict stays the checkpoint's
        return twin

    def forward(self, source_image: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict:
        return self.render(self.encode_source(source_image[:1]), kp_driving, kp_source[:1])

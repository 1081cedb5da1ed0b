"""GFPGAN v1.4 ("clean" architecture): U-Net encoder, SFT condition heads and a StyleGAN2 decoder.

Built from GFPGAN v1.4's published architecture (the clean StyleGAN2 variant) so that the official
``GFPGANv1.4.pth`` ('params_ema') loads with strict=True. The parameter names are the official ones.

Noise: the official pipeline draws fresh noise maps at every call from torch's global RNG
(``randomize_noise=True``). We keep that mechanism but draw from an explicit ``torch.Generator`` so
that a frame's noise depends only on (job seed, frame index): a retried chunk reproduces its frames.
Drawing with a generator seeded with ``s`` gives the same maps as ``torch.manual_seed(s)`` followed by
the official draws (same order: layer 0..14, shape (B,1,H,W)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .render_blocks import lowp_conv, lowp_twin, lowp_weight


@dataclass(frozen=True)
class GFPGANConfig:
    """Constructor values of GFPGANer(arch='clean', channel_multiplier=2) for v1.4."""

    out_size: int = 512
    num_style_feat: int = 512
    channel_multiplier: int = 2
    narrow: float = 1.0
    num_mlp: int = 8

    @property
    def log_size(self) -> int:
        return int(math.log2(self.out_size))

    def decoder_channels(self) -> dict[int, int]:
        n, cm = self.narrow, self.channel_multiplier
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
        return {r: int(c * n) for r, c in table.items()}

    def unet_channels(self) -> dict[int, int]:
        # The U-Net uses half the decoder's narrow, so U-channels = D-channels / 2 (the SFT split relies on it).
        return replace(self, narrow=self.narrow * 0.5).decoder_channels()


def reduced_gfpgan_config() -> GFPGANConfig:
    """Same code and 512 px faces, 1/8 of the channels: for fast pipeline tests with synthetic weights."""
    return GFPGANConfig(num_style_feat=64, narrow=0.125)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """U-Net block: conv, resize (x0.5 or x2), conv, plus a resized 1x1 skip (no bias)."""

    def __init__(self, in_ch: int, out_ch: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _resize(_lrelu(self.conv1(x)), self.factor)
        h = _lrelu(self.conv2(h))
        return h + self.skip(_resize(x, self.factor))


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv without the equalized-lr multiplier; optional x2 bilinear input upsampling."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, num_style_feat: int, demodulate: bool, upsample: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, out_ch, in_ch, kernel, kernel))
        self.modulation = nn.Linear(num_style_feat, in_ch, bias=True)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel // 2
        self.out_ch = out_ch

    @torch.no_grad()
    def to_lowp(self, dtype: torch.dtype) -> None:
        """Reduced-precision twin (``lowp_gfpgan``): the unmodulated kernel cast once to ``dtype``, channels-last.

        The twin modulates the input instead of the weight: conv(x * s, W) * d equals conv(x, W * s) * d
        because s scales input channels; d = rsqrt(sum_i s_i^2 sum_k W_oik^2 + 1e-8) (float32) is the same
        demodulation. So one constant bf16 kernel serves every style and the batch needs no grouped conv.
        """
        w = self.weight.detach()[0]
        self._lowp = {"weight": lowp_weight(w, dtype), "sq": w.pow(2).sum([2, 3])}

    def _forward_lowp(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        s = self.modulation(style)  # (b, in)
        x = x * s.view(b, c, 1, 1)
        if self.upsample:
            x = _resize(x, 2)
        out = lowp_conv(x, self._lowp["weight"], None, padding=self.padding)
        if self.demodulate:
            demod = torch.rsqrt(s.pow(2) @ self._lowp["sq"].t() + 1e-8)  # (b, out)
            out = out * demod.view(b, self.out_ch, 1, 1)
        return out

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.__dict__.get("_lowp") is not None:
            return self._forward_lowp(x, style)
        b, c, h, w = x.shape
        weight = self.weight * self.modulation(style).view(b, 1, c, 1, 1)  # (b, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(b, self.out_ch, 1, 1, 1)
        if self.upsample:
            x = _resize(x, 2)
            h, w = h * 2, w * 2
        k = weight.shape[-1]
        # One grouped conv for the batch: each sample has its own modulated weight.
        out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * self.out_ch, c, k, k), padding=self.padding, groups=b)
        return out.view(b, self.out_ch, h, w)


class StyleConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, num_style_feat: int, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, out_ch, 3, num_style_feat, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2**0.5
        out = out + self.weight * noise
        return _lrelu(out + self.bias)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, num_style_feat: int, upsample_skip: bool) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, 3, 1, num_style_feat, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample_skip = upsample_skip

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (_resize(skip, 2) if self.upsample_skip else skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, ch, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class StyleGAN2DecoderSFT(nn.Module):
    """The clean StyleGAN2 generator with SFT on half of the channels after each upsampling conv."""

    def __init__(self, cfg: GFPGANConfig) -> None:
        super().__init__()
        ch = cfg.decoder_channels()
        nsf = cfg.num_style_feat
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(cfg.num_mlp):
            mlp += [nn.Linear(nsf, nsf, bias=True), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)  # unused (the latent is given), present for strict loading
        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], nsf, upsample=False)
        self.to_rgb1 = ToRGB(ch[4], nsf, upsample_skip=False)
        self.num_layers = (cfg.log_size - 2) * 2 + 1
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for j in range(self.num_layers):
            r = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise{j}", torch.zeros(1, 1, r, r))
        in_ch = ch[4]
        for i in range(3, cfg.log_size + 1):
            out_ch = ch[2**i]
            self.style_convs.append(StyleConv(in_ch, out_ch, nsf, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, nsf, upsample=False))
            self.to_rgbs.append(ToRGB(out_ch, nsf, upsample_skip=True))
            in_ch = out_ch

    def noise_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        return [(batch, 1, *getattr(self.noises, f"noise{j}").shape[-2:]) for j in range(self.num_layers)]

    def forward(self, latent: torch.Tensor, conditions: list[torch.Tensor], noise: list[torch.Tensor]) -> torch.Tensor:
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            out = self.style_convs[2 * level](out, latent[:, i], noise[i])
            if i < len(conditions):
                same, sft = torch.split(out, out.size(1) // 2, dim=1)
                out = torch.cat([same, sft * conditions[i - 1] + conditions[i]], dim=1)
            out = self.style_convs[2 * level + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


class GFPGANv1Clean(nn.Module):
    def __init__(self, cfg: GFPGANConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GFPGANConfig()
        u = cfg.unet_channels()
        log = cfg.log_size
        self.conv_body_first = nn.Conv2d(3, u[cfg.out_size], 1)
        self.conv_body_down = nn.ModuleList()
        in_ch = u[cfg.out_size]
        for i in range(log, 2, -1):
            out_ch = u[2 ** (i - 1)]
            self.conv_body_down.append(ResBlock(in_ch, out_ch, 0.5))
            in_ch = out_ch
        self.final_conv = nn.Conv2d(in_ch, u[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        self.toRGB = nn.ModuleList()
        in_ch = u[4]
        for i in range(3, log + 1):
            out_ch = u[2**i]
            self.conv_body_up.append(ResBlock(in_ch, out_ch, 2))
            in_ch = out_ch
            self.condition_scale.append(self._sft_head(out_ch))
            self.condition_shift.append(self._sft_head(out_ch))
            self.toRGB.append(nn.Conv2d(out_ch, 3, 1))
        self.num_latent = log * 2 - 2
        self.final_linear = nn.Linear(u[4] * 4 * 4, self.num_latent * cfg.num_style_feat)
        self.stylegan_decoder = StyleGAN2DecoderSFT(cfg)

    @staticmethod
    def _sft_head(ch: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 3, 1, 1))

    def draw_noise(self, batch: int, generator: torch.Generator | None) -> list[torch.Tensor]:
        """Fresh standard-normal maps in layer order (the official randomize_noise draws)."""
        return [torch.randn(s, generator=generator) for s in self.stylegan_decoder.noise_shapes(batch)]

    def stored_noise(self) -> list[torch.Tensor]:
        dec = self.stylegan_decoder
        return [getattr(dec.noises, f"noise{j}") for j in range(dec.num_layers)]

    def forward(
        self,
        x: torch.Tensor,
        *,
        return_rgb: bool = False,
        randomize_noise: bool = True,
        generator: torch.Generator | None = None,
        noise: list[torch.Tensor] | None = None,
        return_style: bool = False,
    ):
        """x: (B,3,S,S) RGB in [-1,1]. Returns (image, side_rgbs) (+ style code when asked).

        Noise: explicit ``noise`` maps win; else randomize_noise draws from ``generator`` (or torch's
        global RNG when None, as the original); else the stored buffers are used.
        """
        b = x.shape[0]
        feat = _lrelu(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = _lrelu(self.final_conv(feat))
        style = self.final_linear(feat.reshape(b, -1)).view(b, self.num_latent, -1)
        conditions: list[torch.Tensor] = []
        side_rgbs: list[torch.Tensor] = []
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                side_rgbs.append(self.toRGB[i](feat))
        if noise is None:
            noise = self.draw_noise(b, generator) if randomize_noise else self.stored_noise()
        image = self.stylegan_decoder(style, conditions, noise)
        if return_style:
            return image, side_rgbs, style
        return image, side_rgbs


def lowp_gfpgan(net: GFPGANv1Clean, dtype: torch.dtype = torch.bfloat16) -> GFPGANv1Clean:
    """A copy of ``net`` whose convolutions run in ``dtype`` (weights cast once, channels-last); the linear
    layers, modulation, demodulation, noise and every sum stay float32. ``net`` is unchanged."""
    return lowp_twin(net, dtype=dtype)

"""audio2pose: a CVAE whose decoder turns audio + noise into head motion.

Checkpoint module ``audio2pose``: ``audio_encoder.audio_encoder.*`` (mel encoder, section 5 table),
``netG.decoder.*`` (runs), ``netG.encoder.*`` and ``netD_motion.*`` (training-only parts, present so the
official file loads strictly; they have no forward here and are never run).

Sampling (``Audio2Pose.sample``): frame 0 gets zero motion; the remaining T-1 frames are decoded in
windows of ``seq_len`` frames, one latent draw per window, and a last draw decodes the final
``seq_len`` frames of which only the uncovered remainder is kept. Draws come from an injected list of
tensors (parity tests) or from a seeded ``torch.Generator`` (same seed, same motion, bit for bit).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .audio2exp import encode_windows, mel_encoder_layers


@dataclass(frozen=True)
class Audio2PoseConfig:
    """auido2pose.yaml values."""

    seq_len: int = 32
    latent_size: int = 64
    audio_emb_in: int = 512
    audio_emb_out: int = 6
    num_classes: int = 46
    pose_dim: int = 6
    decoder_layer_sizes: tuple[int, ...] = (128, 192)
    encoder_layer_sizes: tuple[int, ...] = (192, 128)
    unet_filters: tuple[int, int, int, int] = field(default=(32, 64, 128, 256))
    batch_frames: int = 128  # mel windows encoded together (speed/memory only)


class MelEncoder(nn.Module):
    """The audio2pose copy of the mel-window encoder (keys ``audio_encoder.*`` inside this module)."""

    def __init__(self):
        super().__init__()
        self.audio_encoder = mel_encoder_layers()


class ResidualConv(nn.Module):
    """Pre-activation residual block: [BN, ReLU, conv3(stride), BN, ReLU, conv3] + [conv3(stride), BN]."""

    def __init__(self, cin: int, cout: int, stride):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1),
        )  # fmt: skip
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    """1 x T x 6 map (H = time) -> same size, sigmoid output; halves time three times, keeps width."""

    def __init__(self, filters: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        f0, f1, f2, f3 = filters
        self.input_layer = nn.Sequential(nn.Conv2d(1, f0, 3, padding=1), nn.BatchNorm2d(f0), nn.ReLU(),
                                         nn.Conv2d(f0, f0, 3, padding=1))
        self.input_skip = nn.Sequential(nn.Conv2d(1, f0, 3, padding=1))
        self.residual_conv_1 = ResidualConv(f0, f1, (2, 1))
        self.residual_conv_2 = ResidualConv(f1, f2, (2, 1))
        self.bridge = ResidualConv(f2, f3, (2, 1))
        self.upsample_1 = Upsample(f3, f3)
        self.up_residual_conv1 = ResidualConv(f3 + f2, f2, 1)
        self.upsample_2 = Upsample(f2, f2)
        self.up_residual_conv2 = ResidualConv(f2 + f1, f1, 1)
        self.upsample_3 = Upsample(f1, f1)
        self.up_residual_conv3 = ResidualConv(f1 + f0, f0, 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f0, 1, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.bridge(x3)
        x6 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], 1))
        x8 = self.up_residual_conv2(torch.cat([self.upsample_2(x6), x2], 1))
        x10 = self.up_residual_conv3(torch.cat([self.upsample_3(x8), x1], 1))
        return self.output_layer(x10)


class PoseDecoder(nn.Module):
    """z (+ style bias), reference pose and a window of audio embeddings -> (B, seq_len, 6) motion."""

    def __init__(self, cfg: Audio2PoseConfig):
        super().__init__()
        self.cfg = cfg
        self.resunet = ResUnet(cfg.unet_filters)
        sizes = [cfg.pose_dim + cfg.latent_size + cfg.seq_len * cfg.audio_emb_out, *cfg.decoder_layer_sizes]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers[f"L{i}"] = nn.Linear(a, b)
            last = i + 2 == len(sizes)
            layers["sigmoid" if last else f"A{i}"] = nn.Sigmoid() if last else nn.ReLU()
        self.MLP = nn.Sequential(layers)
        self.pose_linear = nn.Linear(cfg.pose_dim, cfg.pose_dim)
        self.linear_audio = nn.Linear(cfg.audio_emb_in, cfg.audio_emb_out)
        self.classbias = nn.Parameter(torch.zeros(cfg.num_classes, cfg.latent_size))

    def forward(self, z: torch.Tensor, style: torch.Tensor, ref_pose: torch.Tensor, audio_emb: torch.Tensor):
        """z (B, 64), style (B,) long, ref_pose (B, 6), audio_emb (B, seq_len, 512) -> (B, seq_len, 6)."""
        b = z.shape[0]
        audio = self.linear_audio(audio_emb).reshape(b, -1)
        x = torch.cat([ref_pose, z + self.classbias[style], audio], dim=-1)
        h = self.MLP(x).reshape(b, 1, self.cfg.seq_len, -1)
        return self.pose_linear(self.resunet(h).squeeze(1))


class PoseEncoder(nn.Module):
    """Training-time CVAE encoder: tensors only (strict loading), never run at inference."""

    def __init__(self, cfg: Audio2PoseConfig):
        super().__init__()
        self.resunet = ResUnet(cfg.unet_filters)
        sizes = list(cfg.encoder_layer_sizes)
        sizes[0] += cfg.latent_size + cfg.seq_len * cfg.audio_emb_out + cfg.pose_dim
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers[f"L{i}"] = nn.Linear(a, b)
            layers[f"A{i}"] = nn.ReLU()
        self.MLP = nn.Sequential(layers)
        self.linear_means = nn.Linear(sizes[-1], cfg.latent_size)
        self.linear_logvar = nn.Linear(sizes[-1], cfg.latent_size)
        self.linear_audio = nn.Linear(cfg.audio_emb_in, cfg.audio_emb_out)
        self.classbias = nn.Parameter(torch.zeros(cfg.num_classes, cfg.latent_size))


class CVAE(nn.Module):
    def __init__(self, cfg: Audio2PoseConfig):
        super().__init__()
        self.encoder = PoseEncoder(cfg)
        self.decoder = PoseDecoder(cfg)


class _ConvNorm1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, bias=False)
        self.norm = nn.BatchNorm1d(cout)


class PoseSequenceDiscriminator(nn.Module):
    """Training-time motion discriminator: tensors only (strict loading), never run at inference."""

    def __init__(self, pose_dim: int = 6):
        super().__init__()
        self.seq = nn.Sequential(
            _ConvNorm1d(pose_dim, 256, 4), _ConvNorm1d(256, 512, 4), _ConvNorm1d(512, 1024, 3), nn.Conv1d(1024, 1, 3)
        )


NoiseSource = Sequence[torch.Tensor] | torch.Generator


@dataclass
class PoseSample:
    pose_motion: torch.Tensor  # (B, T, 6), frame 0 is zero
    pose: torch.Tensor  # (B, T, 6) = ref_pose + motion, before smoothing
    noises: list[torch.Tensor]  # the latent draws used, in draw order


class Audio2Pose(nn.Module):
    def __init__(self, config: Audio2PoseConfig | None = None):
        super().__init__()
        self.config = config or Audio2PoseConfig()
        self.audio_encoder = MelEncoder()
        self.netG = CVAE(self.config)
        self.netD_motion = PoseSequenceDiscriminator(self.config.pose_dim)

    def num_draws(self, num_frames: int) -> int:
        n = num_frames - 1
        return n // self.config.seq_len + (1 if n % self.config.seq_len else 0)

    @torch.no_grad()
    def sample(self, indiv_mels: torch.Tensor, ref_pose: torch.Tensor, pose_style: int, noise: NoiseSource) -> PoseSample:
        """indiv_mels (B, T, 1, 80, 16), ref_pose (B, 6) -> motion and pose (B, T, 6).

        ``noise``: a list of (B, latent) tensors consumed in draw order, or a generator drawn from with
        ``torch.randn(B, latent)`` per window (what the original does with the global generator).
        """
        cfg = self.config
        b, t = indiv_mels.shape[:2]
        n = t - 1  # frame 0 is the reference itself
        div, re = divmod(n, cfg.seq_len)
        draws_needed = div + (1 if re else 0)
        if isinstance(noise, torch.Generator):
            noises = [torch.randn(b, cfg.latent_size, generator=noise) for _ in range(draws_needed)]
        else:
            noises = [torch.as_tensor(z, dtype=torch.float32).reshape(b, cfg.latent_size) for z in noise]
            if len(noises) < draws_needed:
                raise ValueError(f"{t} frames need {draws_needed} noise tensors, got {len(noises)}")
            noises = noises[:draws_needed]
        style = torch.full((b,), int(pose_style), dtype=torch.long)
        motion = [ref_pose.new_zeros(b, 1, cfg.pose_dim)]
        if n > 0:
            windows = indiv_mels[:, 1:].reshape(b * n, 1, *indiv_mels.shape[-2:])
            emb = encode_windows(self.audio_encoder.audio_encoder, windows, cfg.batch_frames).reshape(b, n, -1)
            decoder = self.netG.decoder
            for i in range(div):
                chunk = emb[:, i * cfg.seq_len : (i + 1) * cfg.seq_len]
                motion.append(decoder(noises[i], style, ref_pose, chunk))
            if re:
                last = emb[:, -cfg.seq_len :]
                if last.shape[1] < cfg.seq_len:  # fewer frames than a window: repeat the first on the left
                    pad = last[:, :1].expand(b, cfg.seq_len - last.shape[1], last.shape[2])
                    last = torch.cat([pad, last], 1)
                motion.append(decoder(noises[div], style, ref_pose, last)[:, -re:])
        pose_motion = torch.cat(motion, 1)
        return PoseSample(pose_motion=pose_motion, pose=ref_pose[:, None, :] + pose_motion, noises=noises)

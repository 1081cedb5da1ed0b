"""audio2exp: a mel-window encoder and one linear layer per frame.

Checkpoint module ``audio2exp`` (keys ``audio_encoder.N.conv_block.{0,1}.*`` and ``mapping1.*``).
The encoder defined here is also the audio encoder of audio2pose (own weights there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# (in, out, kernel, stride, padding, residual) of the 13 encoder blocks; (1, 80, 16) -> (512, 1, 1).
MEL_ENCODER_BLOCKS: tuple[tuple[int, int, int, int | tuple[int, int], int, bool], ...] = (
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
)


class ConvBNReLU(nn.Module):
    """Conv2d (bias) -> BatchNorm -> [+ input] -> ReLU; parameters under ``conv_block.{0,1}``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride, padding: int, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)


def mel_encoder_layers() -> nn.Sequential:
    return nn.Sequential(*(ConvBNReLU(*spec) for spec in MEL_ENCODER_BLOCKS))


def encode_windows(layers: nn.Sequential, windows: torch.Tensor, batch: int) -> torch.Tensor:
    """(N, 1, 80, 16) mel windows -> (N, 512), in batches of ``batch`` windows to bound memory."""
    outs = [layers(windows[s : s + batch]).flatten(1) for s in range(0, windows.shape[0], batch)]
    return torch.cat(outs, 0) if outs else windows.new_zeros((0, 512))


@dataclass(frozen=True)
class Audio2ExpConfig:
    exp_dim: int = 64
    audio_dim: int = 512
    # Windows encoded together. The original runs 10 frames at a time; the batch size does not change
    # the maths (BatchNorm is in eval mode), only speed and memory.
    batch_frames: int = 128


class Audio2Exp(nn.Module):
    """Per-frame expression (64) from the frame's mel window, the reference expression and a blink ratio."""

    def __init__(self, config: Audio2ExpConfig | None = None):
        super().__init__()
        self.config = config or Audio2ExpConfig()
        self.audio_encoder = mel_encoder_layers()
        self.mapping1 = nn.Linear(self.config.audio_dim + self.config.exp_dim + 1, self.config.exp_dim)

    def forward(self, indiv_mels: torch.Tensor, ref_exp: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """indiv_mels (B, T, 1, 80, 16), ref_exp (B, T, 64), ratio (B, T, 1) -> expression (B, T, 64)."""
        b, t = indiv_mels.shape[:2]
        audio = encode_windows(self.audio_encoder, indiv_mels.reshape(b * t, 1, *indiv_mels.shape[-2:]),
                               self.config.batch_frames)
        x = torch.cat([audio, ref_exp.reshape(b * t, -1), ratio.reshape(b * t, -1)], dim=1)
        return self.mapping1(x).reshape(b, t, -1)

"""Building blocks shared by the face-render networks (keypoint detector, dense motion, generator).

Parameter names (``conv``, ``norm``, ``pool``-free) follow the official checkpoints so that state dicts
load strictly. BatchNorm layers are plain BatchNorm (the originals are synchronised BN, identical in
eval mode). Everything here runs in inference mode only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid_3d(depth: int, height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(d, h, w, 3) grid of (x, y, z) in [-1, 1], computed as ``2 * (i / (n - 1)) - 1`` like the original."""

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=dtype) / (n - 1)) - 1

    x = axis(width).view(1, 1, -1).expand(depth, height, width)
    y = axis(height).view(1, -1, 1).expand(depth, height, width)
    z = axis(depth).view(-1, 1, 1).expand(depth, height, width)
    return torch.stack([x, y, z], dim=3)


@torch.no_grad()
def fold_batchnorm(conv: nn.Module, norm: nn.Module) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (inference only; changes ``conv`` in place).

    BN(conv(x)) = conv(x) * g / sqrt(var + eps) + (beta - mean * g / sqrt(var + eps)), so the scale goes into
    the weights and the shift into the bias. The arithmetic is done in float64 and rounded once.
    """
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    conv.weight.copy_((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
    new_bias = ((bias - norm.running_mean.double()) * scale + norm.bias.double()).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def fold_all_batchnorms(root: nn.Module) -> int:
    """Fold every conv -> BatchNorm pair of the blocks below ``root``; the norms become Identity.

    After folding, the state dict no longer has the norms' keys, so reloading a checkpoint into the
    folded network fails loudly instead of applying the normalisation twice. Returns the pairs folded.
    """
    folded = 0
    for module in root.modules():
        if isinstance(getattr(module, "norm", None), nn.modules.batchnorm._BatchNorm) and getattr(module, "folds_norm", False):
            fold_batchnorm(module.conv, module.norm)
            module.norm = nn.Identity()
            folded += 1
    return folded


class DownBlock2d(nn.Module):
    """conv3 -> BN -> ReLU -> 2x2 average pool."""

    folds_norm = True  # conv -> BN: foldable at load time

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class SameBlock2d(nn.Module):
    """conv3 -> BN -> ReLU (or LeakyReLU 0.01), resolution kept."""

    folds_norm = True  # conv -> BN: foldable at load time

    def __init__(self, cin: int, cout: int, lrelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(cout, affine=True)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x))
        return F.leaky_relu(out) if self.lrelu else F.relu(out)


class DownBlock3d(nn.Module):
    """conv3^3 -> BN3d -> ReLU -> average pool (1, 2, 2) (depth kept)."""

    folds_norm = True  # conv -> BN: foldable at load time

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), kernel_size=(1, 2, 2))


class UpBlock3d(nn.Module):
    """nearest x(1, 2, 2) -> conv3^3 -> BN3d -> ReLU."""

    folds_norm = True  # conv -> BN: foldable at load time

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv(ReLU(BN(conv(ReLU(BN(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels, affine=True)
        self.norm2 = nn.BatchNorm3d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class SpectralConv2d(nn.Module):
    """A Conv2d stored as spectral-norm parameters (``weight_orig``, ``weight_u``, ``weight_v``).

    At inference the original never runs a power iteration, so the effective weight is the constant
    ``weight_orig / (u . W v)``. It is computed once, after loading (``refresh()``, called by
    ``load_state_dict``), with the same float32 ops torch's spectral_norm uses, and cached.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight_u", torch.ones(cout) / cout**0.5)
        self.register_buffer("weight_v", torch.ones(cin * kernel_size * kernel_size) / (cin * kernel_size**2) ** 0.5)
        nn.init.normal_(self.weight_orig, std=0.02)
        self._weight: torch.Tensor | None = None

    def _load_from_state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003 - torch hook signature
        super()._load_from_state_dict(*args, **kwargs)
        self._weight = None  # recomputed from the new tensors on first use

    @torch.no_grad()
    def effective_weight(self) -> torch.Tensor:
        if self._weight is None:
            w = self.weight_orig.detach()
            sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
            self._weight = w / sigma
        return self._weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.padding)

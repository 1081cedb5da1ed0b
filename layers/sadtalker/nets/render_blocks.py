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

    @torch.no_grad()
    def to_lowp(self, dtype: torch.dtype) -> None:
        """Inference twin (``lowp_twin``): the effective weight, computed in float32, cast once to ``dtype``."""
        self._weight = lowp_weight(self.effective_weight(), dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lowp_conv(x, self.effective_weight(), self.bias, padding=self.padding)


# --- reduced-precision inference (precision="bf16") -----------------------------------------------------
def memory_format_of(dim: int) -> torch.memory_format:
    """channels-last for 4-D tensors (NHWC), channels-last-3d for 5-D (NDHWC): oneDNN's fast bf16 layouts."""
    return torch.channels_last_3d if dim == 5 else torch.channels_last


def lowp_weight(weight: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """A constant conv weight cast once (at load time) to ``dtype`` in the channels-last layout."""
    return weight.detach().to(dtype).contiguous(memory_format=memory_format_of(weight.dim()))


def lowp_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, **kwargs) -> torch.Tensor:
    """conv2d / conv3d in the weight's dtype and layout; float32, contiguous (NC...) result.

    For a float32 weight this is exactly ``F.conv2d``/``F.conv3d``. For a bfloat16 weight (``lowp_weight``) the
    input is rounded to bfloat16 in channels-last layout, oneDNN accumulates in float32 and rounds the output
    to bfloat16, which is widened back to float32: everything between convolutions (norms, modulation,
    activations, residual sums, sampling) stays float32.
    """
    conv = F.conv3d if weight.dim() == 5 else F.conv2d
    if weight.dtype == x.dtype:
        return conv(x, weight, bias, **kwargs)
    x = x.to(weight.dtype, memory_format=memory_format_of(x.dim()))
    out = conv(x, weight, None if bias is None else bias.to(weight.dtype), **kwargs)
    return out.to(torch.float32, memory_format=torch.contiguous_format)


class LowPrecisionConv(nn.Module):
    """Inference twin of an ``nn.Conv2d`` / ``nn.Conv3d``: the weight cast once to bf16, channels-last."""

    def __init__(self, conv: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.register_buffer("weight", lowp_weight(conv.weight, dtype))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().to(dtype))
        self.kwargs = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation, "groups": conv.groups}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lowp_conv(x, self.weight, self.bias, **self.kwargs)


def lowp_twin(root: nn.Module, keep_fp32: tuple[nn.Module, ...] = (), dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """A copy of ``root`` whose convolutions run in ``dtype`` (weights cast once), except the ``keep_fp32`` modules.

    The copy shares no tensors with ``root`` (``root`` stays the exact float32 path). Modules with their own
    precomputed kernels (``SpectralConv2d``, the generator's SPADE) convert them through their ``to_lowp``.
    """
    import copy

    keep_ids = {id(m) for m in keep_fp32}
    for m in root.modules():  # mark before copying: deepcopy keeps the attribute
        if id(m) in keep_ids:
            m._keep_fp32 = True
    try:
        twin = copy.deepcopy(root)
    finally:
        for m in root.modules():
            m.__dict__.pop("_keep_fp32", None)

    def convert(module: nn.Module) -> None:
        if getattr(module, "_keep_fp32", False):
            return
        if hasattr(module, "to_lowp"):  # before its children: it may derive kernels from their float32 weights
            module.to_lowp(dtype)
        for name, child in list(module.named_children()):
            if getattr(child, "_keep_fp32", False):
                continue
            if isinstance(child, (nn.Conv2d, nn.Conv3d)):
                setattr(module, name, LowPrecisionConv(child, dtype))
            else:
                convert(child)

    convert(twin)
    for m in twin.modules():
        m.__dict__.pop("_keep_fp32", None)
    return twin.eval().requires_grad_(False)

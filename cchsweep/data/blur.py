"""Gaussian blur of standard deviation gamma for the teacher's inputs (Section 4.2, Algorithm 1).

A separable convolution with a normalized kernel of radius ceil(3 gamma), batched, on
whatever device the input lives on.

Padding (default "reflect") is half-sample symmetric: the border pixel is repeated
(d c b a | a b c d | d c b a), as scipy.ndimage's default mode "reflect" does, not torch's
"reflect" (which skips the border pixel). With a symmetric kernel this operator is
diagonalized by the DCT-II and keeps the DC term, so the blur preserves each image's total
intensity exactly (up to float rounding) for any gamma, even when the kernel is wider than
the image. "zeros" pads with zeros instead: mass then leaks out at the border and is only
preserved for content farther than the radius from it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Padding = Literal["reflect", "zeros"]
MNIST_SIDE = 28


def gaussian_kernel1d(
    gamma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The normalized 1-D kernel of length 2 ceil(3 gamma) + 1 (gamma > 0)."""
    if not gamma > 0:
        raise ValueError(f"gamma={gamma} must be positive for a kernel")
    radius = math.ceil(3.0 * gamma)
    # float64 so that tiny tails of a narrow kernel are normalized before rounding.
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / gamma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, gamma: float, padding: Padding = "reflect") -> torch.Tensor:
    """Blur a batch of images: (N, 784) flattened 28x28 digits, or (..., H, W).

    The result has x's shape, dtype and device. gamma = 0 returns x itself, unchanged.
    """
    if gamma < 0 or not math.isfinite(gamma):
        raise ValueError(f"gamma={gamma} must be a finite non-negative number")
    if padding not in ("reflect", "zeros"):
        raise ValueError(f"padding must be 'reflect' or 'zeros', not {padding!r}")
    if gamma == 0:
        return x
    if not x.is_floating_point():
        raise TypeError(f"gaussian_blur needs a floating-point tensor, not {x.dtype}")
    if x.dim() == 2 and x.shape[-1] == MNIST_SIDE * MNIST_SIDE:
        height = width = MNIST_SIDE
    elif x.dim() >= 2:
        height, width = x.shape[-2:]
    else:
        raise ValueError(f"expected (N, 784) or (..., H, W) images, got shape {tuple(x.shape)}")
    images = x.reshape(-1, 1, height, width)
    kernel = gaussian_kernel1d(gamma, dtype=x.dtype, device=x.device)
    radius = (kernel.numel() - 1) // 2
    # cuDNN convolves float32 in TF32 unless told not to (torch's default): blur in full float32, as
    # on a CPU; TF32 is an opt-in of the training engine (cchsweep.cudagraph), never of the data.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        if padding == "zeros":
            out = F.conv2d(images, kernel.view(1, 1, 1, -1), padding=(0, radius))
            out = F.conv2d(out, kernel.view(1, 1, -1, 1), padding=(radius, 0))
        else:
            out = F.conv2d(_symmetric_pad(images, radius, dim=3), kernel.view(1, 1, 1, -1))
            out = F.conv2d(_symmetric_pad(out, radius, dim=2), kernel.view(1, 1, -1, 1))
    return out.reshape(x.shape)


def _symmetric_pad(images: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Half-sample symmetric padding along one dim, by index so any radius works."""
    n = images.shape[dim]
    # The symmetric extension is periodic with period 2n: fold each index into [0, n).
    index = torch.arange(-radius, n + radius, device=images.device) % (2 * n)
    index = torch.where(index >= n, 2 * n - 1 - index, index)
    return images.index_select(dim, index)

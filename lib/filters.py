"""Gaussian low- and high-pass filters (spec 1.2 and 1.9), on (B, C, H, W) tensors."""

from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur


def lowpass(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """Gaussian blur (torchvision's ``gaussian_blur``, reflect padding). The kernel is clipped to the image so that a
    33-tap kernel still works on 28×28 digits; an even size is rounded up to the next odd one."""
    k = int(kernel_size) | 1
    k = min(k, 2 * (min(x.shape[-2:]) - 1) - 1)  # reflect padding needs k // 2 < side
    if k < 3 or sigma <= 0:
        return x
    return gaussian_blur(x, [k, k], [float(sigma), float(sigma)])


def highpass(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """identity − lowpass: the detail a Gaussian blur removes."""
    return x - lowpass(x, kernel_size, sigma)

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


def detail_as_ink(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """The high-pass h of each image shown as ink on black: clamp(2·h / max(h) − 1, −1, 1), so the ridges of its
    strokes are white and the flat background (h ≈ 0) and the dark halos beside the strokes (h < 0) are black. A
    ×2 gray rendering centres the background at mid-gray instead, which neither a viewer nor a digit classifier reads
    as a digit. A peak below 10⁻³ (rounding noise of a flat image) counts as no detail: all black."""
    h = highpass(x, kernel_size, sigma)
    peak = h.flatten(1).amax(1).clamp_min(1e-3).view(-1, *([1] * (h.dim() - 1)))
    return (2 * h / peak - 1).clamp(-1, 1)

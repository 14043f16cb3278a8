"""Gaussian low- and high-pass filters (spec 1.2 and 1.9) and the decompositions of factorized diffusion, on
(B, C, H, W) tensors.

A ``Decomposition`` is a list of linear filters f_1 … f_N with Σ_i f_i = id (Geng et al. 2024, "Factorized diffusion"):
each prompt i then owns the component f_i of the image, ε = Σ_i f_i(ε_i).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Filter = Callable[[torch.Tensor], torch.Tensor]


def gaussian_taps(kernel_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """The normalised 1-D Gaussian g(u) ∝ exp(−u² / 2σ²) at u = −(k − 1)/2 … (k − 1)/2 (torchvision's kernel)."""
    u = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-u ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).to(like)


def lowpass(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """Gaussian blur with reflect padding — torchvision's ``gaussian_blur`` — computed as two 1-D passes (rows, then
    columns): the 2-D kernel is the outer product g gᵀ, so the result is the same for 2k instead of k² taps per pixel
    (the course's 265 taps at 512 px: 130× less work at every guided Euler step of a hybrid). The kernel is clipped to
    the image so that a 33-tap kernel still works on 28×28 digits; an even size is rounded up to the next odd one."""
    k = int(kernel_size) | 1
    k = min(k, 2 * (min(x.shape[-2:]) - 1) - 1)  # reflect padding needs k // 2 < side
    if k < 3 or sigma <= 0:
        return x
    c, r = x.shape[-3], k // 2
    g = gaussian_taps(k, float(sigma), x)
    padded = F.pad(x.reshape(-1, *x.shape[-3:]), (r, r, r, r), mode="reflect")
    rows = F.conv2d(padded, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(rows, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c).reshape(x.shape)


def seen_small(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) → (N, C, h, w) with h = max(4, round(H / 2σ)): each block of 2σ × 2σ pixels averaged into one
    (area resampling), as a picture 2σ times further away reaches the eye. It keeps about what G_σ keeps: at the small
    picture's Nyquist frequency 1 / 4σ cycles per original pixel the Gaussian's response e^(−2π²σ²f²) is e^(−π²/8)
    ≈ 0.29, so the detail finer than the low-pass band is averaged away instead of drawn."""
    h, w = (max(4, round(side / (2 * sigma))) for side in x.shape[-2:])
    return F.interpolate(x.float(), size=(h, w), mode="area")


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


@dataclass(frozen=True)
class Decomposition:
    """Linear filters f_1 … f_N that sum to the identity, each with the label of the component its prompt controls."""

    labels: tuple[str, ...]
    filters: tuple[Filter, ...]

    def parts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[f_1(x) … f_N(x)]: what each prompt controls in ``x`` (they add up to x)."""
        return [f(x) for f in self.filters]

    def combine(self, xs) -> torch.Tensor:
        """Σ_i f_i(x_i): component i taken from x_i."""
        return sum(f(x) for f, x in zip(self.filters, xs, strict=True))


def two_band(kernel_size: int, sigma: float) -> Decomposition:
    """Hybrid images (spec 1.9): f_1 = G_σ (low frequencies, seen from far), f_2 = id − G_σ (detail, up close)."""
    return Decomposition(("low frequencies", "high frequencies"),
                         (lambda x: lowpass(x, kernel_size, sigma), lambda x: highpass(x, kernel_size, sigma)))


def three_band(kernel_size: int, sigma_fine: float, sigma_coarse: float) -> Decomposition:
    """Triple hybrids: low = G_σ2, mid = G_σ1 − G_σ2, high = id − G_σ1 (σ1 < σ2), a telescoping sum equal to id."""
    def fine(x):
        return lowpass(x, kernel_size, sigma_fine)

    def coarse(x):
        return lowpass(x, kernel_size, sigma_coarse)

    return Decomposition(("low frequencies", "middle frequencies", "high frequencies"),
                         (coarse, lambda x: fine(x) - coarse(x), lambda x: x - fine(x)))


def grey(x: torch.Tensor) -> torch.Tensor:
    """The channel mean broadcast to every channel: the greyscale image (same shape as x)."""
    return x.mean(dim=-3, keepdim=True).expand_as(x)


def colour_grey() -> Decomposition:
    """Colour vs greyscale (3-channel images): f_1 = grey (the channel mean), f_2 = id − grey (the colours, with zero
    mean over the channels)."""
    return Decomposition(("greyscale", "colour"), (grey, lambda x: x - grey(x)))


def motion_blur(x: torch.Tensor, length: int, diagonal: bool = False) -> torch.Tensor:
    """Box blur of ``length`` pixels (rounded up to odd, centred) along the rows, or the main diagonal: the mean of x
    over the pixels a camera shake of that length smears together. Reflect padding, each channel on its own."""
    n = int(length) | 1
    if n < 3:
        return x
    kernel = torch.eye(n) if diagonal else torch.zeros(n, n).index_fill_(0, torch.tensor([n // 2]), 1.0)
    c = x.shape[-3]
    weight = (kernel / n).to(x).expand(c, 1, n, n)
    padded = F.pad(x, [n // 2] * 4, mode="reflect")
    return F.conv2d(padded, weight, groups=c)


def motion_residual(length: int, diagonal: bool = False) -> Decomposition:
    """Motion blur vs residual: f_1 = box blur B_L (what a shaken camera keeps), f_2 = id − B_L."""
    def blur(x):
        return motion_blur(x, length, diagonal)

    return Decomposition(("motion blur", "residual"), (blur, lambda x: x - blur(x)))


def frequency_response(decomposition: Decomposition, size: int, channels: int) -> tuple[torch.Tensor, list]:
    """Measured radial response of each filter: f_i applied to a unit impulse at the centre of a ``size``-px image
    (in channel 0), the real part of its 2-D DFT averaged over rings of equal |f| (cycles per pixel, 0 … 0.5).
    Linearity makes the responses sum to 1 at every frequency. Returns (frequencies, [response_i])."""
    impulse = torch.zeros(1, channels, size, size, dtype=torch.float64)
    impulse[0, 0, size // 2, size // 2] = 1.0
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    ring = torch.round(radius * size).long().flatten()
    keep = ring <= size // 2
    counts = torch.bincount(ring[keep], minlength=size // 2 + 1)
    responses = []
    for part in decomposition.parts(impulse):
        h = torch.fft.fft2(torch.fft.ifftshift(part[0, 0], dim=(-2, -1))).real.flatten()
        responses.append(torch.bincount(ring[keep], weights=h[keep], minlength=size // 2 + 1) / counts)
    return torch.arange(size // 2 + 1, dtype=torch.float64) / size, responses

"""The flow edition's part-A denoising lessons (§1.2, 1.4, 1.5): the classical baseline, the velocity diagnostics and the
two numbers that compare estimates of the clean image.

§1.2 classical denoising — first undo the path's shrinking of the image, then blur:

    x_t / t = x₁ + ((1 − t)/t)·ε          ``amplitude_restored``
    x̂ = G_σ(x_t / t), σ ∈ {1, 2, 4, 8, 16} with kernel int(6σ + 1), the σ of least MSE kept   ``best_blur``

§1.4 visualising velocity — over the remaining time 1 − t the model's update and the true one are

    predicted (1 − t)·v̂,   true (1 − t)·v_gt = x₁ − x_t  with v_gt = x₁ − ε,
    E_t = sqrt(mean over channels of [(1 − t)(v̂ − v_gt)]²)   per pixel        ``velocity_diagnostics``

§1.5 compares the one-step estimate, Euler and the blur by MSE *and* sharpness (``sharpness``): the course's own
validation found the one-step estimate ahead on MSE at t = 0.5 while Euler looks sharper, so the page reports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from lib.flow.path import per_row
from lib.techniques.filters import lowpass

COURSE_SIGMAS = (1, 2, 4, 8, 16)  # the notebook's σ sweep of §1.2


def amplitude_restored(x_t: torch.Tensor, t: float) -> torch.Tensor:
    """x_t / t = x₁ + ((1 − t)/t)·ε: the image at full amplitude under the remaining noise (t > 0)."""
    if not t > 0:
        raise ValueError("at t = 0 x_t is pure noise: nothing of the image to restore")
    return x_t / t


def blur_kernel(sigma: float) -> int:
    """The notebook's kernel size for σ: int(6σ + 1), made odd."""
    return int(6 * sigma + 1) | 1


@dataclass(frozen=True)
class BlurSweep:
    """§1.2's sweep: the MSE of G_σ(x_t/t) against x₁ for every σ, and the best σ's image."""

    sigmas: tuple[float, ...]
    errors: tuple[float, ...]
    best_sigma: float
    best: torch.Tensor


def best_blur(x_t: torch.Tensor, t: float, x1: torch.Tensor, sigmas: Sequence[float] = COURSE_SIGMAS) -> BlurSweep:
    """G_σ(x_t / t) for each σ, scored by MSE against the clean ``x1``; the σ of least MSE wins."""
    restored = amplitude_restored(x_t, t)
    blurred = [lowpass(restored, blur_kernel(s), s) for s in sigmas]
    errors = [F.mse_loss(b, x1).item() for b in blurred]
    best = min(range(len(sigmas)), key=errors.__getitem__)
    return BlurSweep(tuple(sigmas), tuple(errors), sigmas[best], blurred[best])


@dataclass(frozen=True)
class VelocityDiagnostics:
    """§1.4 for one t: the two updates over the remaining 1 − t (image-shaped) and the per-pixel error map (B, H, W)."""

    predicted_update: torch.Tensor
    true_update: torch.Tensor
    error_map: torch.Tensor


def velocity_diagnostics(x1: torch.Tensor, eps: torch.Tensor, t: float | torch.Tensor,
                         v_hat: torch.Tensor) -> VelocityDiagnostics:
    """(1 − t)·v̂, x₁ − x_t = (1 − t)(x₁ − ε), and E_t = sqrt(mean_c [(1 − t)(v̂ − v_gt)]²), before any display scaling."""
    remaining = 1 - per_row(t, x1)
    predicted = remaining * v_hat
    true = remaining * (x1 - eps)
    return VelocityDiagnostics(predicted, true, ((predicted - true) ** 2).mean(dim=1).sqrt())


def symmetric_limit(*updates: torch.Tensor) -> float:
    """The one symmetric display scale [−m, m] for several updates (zero at mid-gray): m = max |value| over all."""
    return max(u.abs().max().item() for u in updates) or 1.0


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Mean squared response to the 3×3 Laplacian per image (B,): edges and texture raise it, a blur lowers it. A
    number for "looks sharper" that MSE (which rewards the blurry mean) does not give."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    response = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    return (response ** 2).flatten(1).mean(1)

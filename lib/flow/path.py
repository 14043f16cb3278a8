"""The straight path of flow matching between noise and an image (flow edition §1, §2 1.1–1.3, §3 2).

Time runs the other way from the DDPMs' index: t = 0 is pure noise ε ~ N(0, I) and t = 1 the image x₁.

    x_t = (1 − t) ε + t · x₁        ``interpolate`` (the one forward process of every flow model here)
    u   = dx_t/dt = x₁ − ε          ``velocity_target`` (the training target; constant along the path)
    x̂₁ = x_t + (1 − t) · v̂         ``one_step_estimate``: the image reached by following v̂ for the remaining 1 − t
                                    (exact for v̂ = u, since the path is a straight line)
    ε̂  = x_t − t · v̂              ``noise_estimate``: the noise the same line started from (x_t = (1 − t) ε̂ + t x̂₁)

``t`` is a float, or a tensor holding one time per row of a (B, C, H, W) batch ((B,) or (B, 1, …)).
"""

from __future__ import annotations

import torch

Time = float | torch.Tensor


def per_row(t: Time, like: torch.Tensor) -> Time:
    """``t`` ready to broadcast against the batch ``like``: a float as is, a (B,) tensor as (B, 1, …, 1)."""
    if not torch.is_tensor(t) or t.dim() == 0:
        return t
    return t.to(like.device).reshape(-1, *[1] * (like.dim() - 1))


def interpolate(x1: torch.Tensor, eps: torch.Tensor, t: Time) -> torch.Tensor:
    """x_t = (1 − t) ε + t · x₁: ε at t = 0, x₁ at t = 1."""
    t = per_row(t, x1)
    return (1 - t) * eps + t * x1


def velocity_target(x1: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """u = x₁ − ε, the velocity of the straight path from ε to x₁ (what u_θ(x_t, t) learns)."""
    return x1 - eps


def one_step_estimate(x_t: torch.Tensor, t: Time, v: torch.Tensor) -> torch.Tensor:
    """x̂₁ = x_t + (1 − t) · v: one Euler step of size 1 − t from t straight to the image."""
    return x_t + (1 - per_row(t, x_t)) * v


def noise_estimate(x_t: torch.Tensor, t: Time, v: torch.Tensor) -> torch.Tensor:
    """ε̂ = x_t − t · v: the point at t = 0 of the line through x_t with velocity v (exact for v = u)."""
    return x_t - per_row(t, x_t) * v

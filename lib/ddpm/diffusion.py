"""The DDPM math shared by both parts of the assignment, written once for any schedule and any image size.

Symbols: ᾱ_t = ``schedule.alphas_cumprod[t]``, with ᾱ_{−1} = 1 for the clean image.

* forward process            x_t  = √ᾱ_t x0 + √(1 − ᾱ_t) ε
* clean-image estimate       x̂0  = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t
* step from t to any t' < t  α = ᾱ_t / ᾱ_t',  β = 1 − α
                             x_t' = (√ᾱ_t' β / (1 − ᾱ_t)) x̂0 + (√α (1 − ᾱ_t') / (1 − ᾱ_t)) x_t + σ z
  (equation 3 of the spec; with t' = t − 1 it is the plain DDPM posterior mean).
* the variance σ² of that step, as diffusers' ``DDPMScheduler`` names it:
    fixed_small    β̃ = (1 − ᾱ_t') / (1 − ᾱ_t) · β      (posterior variance)
    fixed_large    β                                   (part B's sampler: + √β_t z)
    learned_range  log σ² = frac · log β + (1 − frac) · log β̃,  frac = (v + 1) / 2   (DeepFloyd IF)
  No noise is added on a step that lands on the clean image (t' = −1: the last step of an MNIST chain, z = 0 as
  the spec says); diffusers agrees for the full chain (it adds noise only when t > 0) and for fixed_small.
* classifier-free guidance   ε = ε_u + γ (ε_c − ε_u)
"""

from __future__ import annotations

from typing import Literal

import torch

from lib.ddpm.schedules import Schedule

VarianceType = Literal["fixed_small", "fixed_large", "learned_range"]


def q_sample(x: torch.Tensor, abar: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """√ᾱ x + √(1 − ᾱ) ε: the one formula of DDPM noising. With ᾱ = ᾱ_t it is the forward process q(x_t | x_0); with
    ᾱ = ᾱ_t / ᾱ_t' it is q(x_t | x_t'), from a less noisy x_t' (RePaint's jump back). ``abar`` is a number, or a
    tensor that broadcasts against ``x`` (one ᾱ_t per row in training)."""
    return abar**0.5 * x + (1.0 - abar) ** 0.5 * noise


def forward_noise(x0: torch.Tensor, t: int, schedule: Schedule, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (t = −1 returns x0 itself)."""
    return q_sample(x0, schedule.abar(t), noise)


def estimate_x0(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule) -> torch.Tensor:
    """One-step denoising: x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
    abar = schedule.abar(t)
    return (x_t - (1.0 - abar) ** 0.5 * eps) / abar**0.5


def step_log_variance(
    t: int,
    t_prev: int,
    schedule: Schedule,
    variance_type: VarianceType,
    predicted_variance: torch.Tensor | None = None,
) -> torch.Tensor:
    """log σ² of the step t → t' (see the module docstring); a scalar tensor unless the variance is learned.

    Equals ``log(DDPMScheduler._get_variance(t, v))`` once the scheduler knows the same timesteps
    (diffusers returns the log itself for learned_range, which the course's ``add_variance`` exponentiates).
    """
    abar_t, abar_prev = schedule.abar(t), schedule.abar(t_prev)
    beta = 1.0 - abar_t / abar_prev
    beta_tilde = max((1.0 - abar_prev) / (1.0 - abar_t) * beta, 1e-20)
    log_beta = torch.log(torch.tensor(beta, dtype=torch.float64))
    log_beta_tilde = torch.log(torch.tensor(beta_tilde, dtype=torch.float64))
    if variance_type == "fixed_small":
        return log_beta_tilde
    if variance_type == "fixed_large":
        return log_beta
    if variance_type == "learned_range":
        if predicted_variance is None:
            raise ValueError("learned_range variance needs the model's predicted variance v")
        frac = (predicted_variance + 1) / 2
        return frac * log_beta.to(predicted_variance) + (1 - frac) * log_beta_tilde.to(predicted_variance)
    raise ValueError(f"unknown variance type {variance_type!r}")


def ddpm_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    t_prev: int,
    schedule: Schedule,
    *,
    variance_type: VarianceType = "fixed_small",
    predicted_variance: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    clip_x0: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One reverse step from t to t' (equation 3 of the spec). Returns ``(x_t', x̂0)``.

    ``noise`` is z ~ N(0, I); pass ``None`` for the mean only. ``clip_x0`` clamps x̂0 to ±clip_x0 before it
    is used (diffusers' ``clip_sample``); the course's loops leave it off.
    """
    if not t_prev < t:
        raise ValueError(f"a reverse step goes to an earlier timestep, got {t} → {t_prev}")
    abar_t, abar_prev = schedule.abar(t), schedule.abar(t_prev)
    alpha = abar_t / abar_prev
    beta = 1.0 - alpha
    x0 = estimate_x0(x_t, eps, t, schedule)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
    mean = (abar_prev**0.5 * beta / (1.0 - abar_t)) * x0 + (alpha**0.5 * (1.0 - abar_prev) / (1.0 - abar_t)) * x_t
    if noise is None or t_prev < 0:
        return mean, x0
    log_var = step_log_variance(t, t_prev, schedule, variance_type, predicted_variance)
    return mean + torch.exp(0.5 * log_var).to(x_t.dtype) * noise, x0

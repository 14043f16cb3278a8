"""Noise schedules: the ᾱ_t table every formula in the app reads, and the strided timestep lists.

A schedule is fully described by its betas: α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s (``alphas_cumprod``).
Part B uses the DDPM linear schedule (T = 300, β from 1e-4 to 0.02); DeepFloyd IF uses diffusers'
``squaredcos_cap_v2`` schedule with T = 1000, read straight from its scheduler so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    """β_t, α_t and ᾱ_t for t = 0 … T−1 (float64 on the CPU; cast at the point of use)."""

    betas: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, dim=0)

    def abar(self, t: int) -> float:
        """ᾱ_t, with the convention ᾱ_{−1} = 1 (the clean image) used by the last DDPM step."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def terminal_signal(self) -> float:
        """√ᾱ_{T−1}: the share of the clean image the last training step's x_t still holds. Sampling starts from pure
        noise, which holds none: the spec's part-B schedule leaves 22 % (ᾱ = 0.048), a mismatch that skews which
        digits a time-only DDPM draws (bench/RESULTS.md, "A better time-conditioned UNet")."""
        return float(self.alphas_cumprod[-1].sqrt())

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) of x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε."""
        acp = self.alphas_cumprod
        return acp / (1.0 - acp)


def linear_schedule(num_timesteps: int = 300, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The DDPM linear schedule: T betas evenly spaced from ``beta_start`` to ``beta_end`` (both included)."""
    if num_timesteps < 1:
        raise ValueError("a schedule needs at least one timestep")
    return Schedule(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64))


def schedule_from_diffusers(scheduler) -> Schedule:
    """The schedule of any diffusers scheduler (e.g. DeepFloyd IF's ``DDPMScheduler``), from its ``betas``."""
    return Schedule(scheduler.betas.detach().to(torch.float64).cpu())


def strided_timesteps(num_timesteps: int, stride: int, start: int | None = None) -> list[int]:
    """Descending timesteps ``[start, start − stride, …, 0]``; the course's IF list is ``strided_timesteps(1000, 30)``
    = [990, 960, …, 30, 0]. ``start`` defaults to the largest multiple of ``stride`` below T, so the list always
    ends at 0 (the clean image) and every gap is exactly ``stride``.
    """
    if stride < 1:
        raise ValueError("stride must be at least 1")
    if stride >= num_timesteps:
        raise ValueError(f"stride {stride} must be smaller than the number of timesteps T = {num_timesteps}")
    if start is None:
        start = ((num_timesteps - 1) // stride) * stride
    if not 0 <= start < num_timesteps:
        raise ValueError(f"start {start} outside 0 … {num_timesteps - 1}")
    return list(range(start, -1, -stride))


def chain_timesteps(num_timesteps: int, stride: int) -> list[int]:
    """The part-B sampler's list: ``[T−1, T−1−stride, …]`` then −1, the clean image (the spec's chain ends with the
    step from t = 0 to x_0); stride 1 is the spec's full T-step chain, and stride T the one step from T−1 straight to
    the clean image. ⌈T / stride⌉ steps in all."""
    if not 1 <= stride <= num_timesteps:
        raise ValueError(f"stride must be between 1 and {num_timesteps}")
    return list(range(num_timesteps - 1, -1, -stride)) + [-1]

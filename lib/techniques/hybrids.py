"""Hybrid images (1.9; flow edition 3.4): g = lowpass(ĝ_1) + highpass(ĝ_2), the two prompts in one batched call; in
general (factorized diffusion) g = Σ_i f_i(ĝ_i) for linear filters with Σ_i f_i = id
(``lib.techniques.filters.Decomposition``) — g the DDPM's noise ε (``factorized_predictor``) or the flow's velocity v
(``factorized_velocity``)."""

from __future__ import annotations

from typing import Sequence

import torch

from lib.ddpm.sampling import NoiseModel, Predictor, guided_predictions
from lib.flow.euler import Predict, VelocityModel, guided_velocities
from lib.techniques.filters import Decomposition, two_band

def factorized_predictor(
    model: NoiseModel, conds: Sequence[torch.Tensor], decomposition: Decomposition, scale: float,
) -> Predictor:
    """Factorized diffusion: ε = Σ_i f_i(ε_i), ε_i the CFG estimate of x_t under prompt i (all prompts in one batched
    call), the f_i the decomposition's filters (Σ_i f_i = id); the same sum of the variances when the model has one."""
    uncond = model.null_condition()

    def predict(x: torch.Tensor, t: int):
        preds = guided_predictions(model, [x] * len(conds), list(conds), uncond, t, scale)
        eps = decomposition.combine([e for e, _ in preds])
        return eps, (None if preds[0][1] is None else decomposition.combine([v for _, v in preds]))

    return predict


def hybrid_predictor(
    model: NoiseModel, cond_low: torch.Tensor, cond_high: torch.Tensor, scale: float,
    kernel_size: int = 33, sigma: float = 2.0,
) -> Predictor:
    """ε = lowpass(ε_1) + highpass(ε_2): prompt 1 seen from afar, prompt 2 up close; the N = 2 factorization."""
    return factorized_predictor(model, [cond_low, cond_high], two_band(kernel_size, sigma), scale)


def factorized_velocity(model: VelocityModel, conds: Sequence[torch.Tensor], decomposition: Decomposition,
                        scale: float) -> Predict:
    """v = Σ_i f_i(v_i), v_i the CFG velocity of x_t under prompt i (one batched call): the flow edition's 3.4 is
    the two-band decomposition, v = lowpass(v₁) + (v₂ − lowpass(v₂))."""
    uncond = model.null_condition()

    def predict(x: torch.Tensor, t: float) -> torch.Tensor:
        return decomposition.combine(guided_velocities(model, [x] * len(conds), list(conds), uncond, t, scale))

    return predict


def lowpass_scaled_to(size: int, sigma_at_512: float = 16.0) -> tuple[int, float]:
    """The flow edition's hybrid low-pass at an image of ``size`` pixels: σ = 16 at 512 scaled with the size, and its
    kernel 2·round(16.5·size/64) + 1 (265 at 512, 33 at 64, 15 at 28 — the course's ``lowpass``)."""
    return 2 * round(16.5 * size / 64) + 1, sigma_at_512 * size / 512

"""Hybrid images (1.9): ε = lowpass(ε̂_1) + highpass(ε̂_2), the two prompts in one batched call; in general (factorized
diffusion) ε = Σ_i f_i(ε̂_i) for linear filters with Σ_i f_i = id (``lib.techniques.filters.Decomposition``)."""

from __future__ import annotations

from typing import Sequence

import torch

from lib.ddpm.sampling import Denoiser, Predictor, guided_predictions
from lib.techniques.filters import Decomposition, two_band

def factorized_predictor(
    denoiser: Denoiser, conds: Sequence[torch.Tensor], decomposition: Decomposition, scale: float,
) -> Predictor:
    """Factorized diffusion: ε = Σ_i f_i(ε_i), ε_i the CFG estimate of x_t under prompt i (all prompts in one batched
    call), the f_i the decomposition's filters (Σ_i f_i = id); the same sum of the variances when the model has one."""
    uncond = denoiser.null_condition()

    def predict(x: torch.Tensor, t: int):
        preds = guided_predictions(denoiser, [x] * len(conds), list(conds), uncond, t, scale)
        eps = decomposition.combine([e for e, _ in preds])
        return eps, (None if preds[0][1] is None else decomposition.combine([v for _, v in preds]))

    return predict


def hybrid_predictor(
    denoiser: Denoiser, cond_low: torch.Tensor, cond_high: torch.Tensor, scale: float,
    kernel_size: int = 33, sigma: float = 2.0,
) -> Predictor:
    """ε = lowpass(ε_1) + highpass(ε_2): prompt 1 seen from afar, prompt 2 up close; the N = 2 factorization."""
    return factorized_predictor(denoiser, [cond_low, cond_high], two_band(kernel_size, sigma), scale)

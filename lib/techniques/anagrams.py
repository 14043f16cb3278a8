"""Visual anagrams (1.8): ε = Σ_i w_i v_i⁻¹(CFG-ε̂(v_i(x_t), p_i)), all views and both CFG halves in one batched call;
the same combination of the predicted variances when the model has one (DeepFloyd IF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lib.ddpm.sampling import Denoiser, Predictor, guided_predictions
from lib.techniques.views import View

@dataclass(frozen=True)
class AnagramStep:
    """The combining rule at one step t, for the page's picture: x_t, each view v_i(x_t), each prompt's CFG estimate
    ε̂_i = CFG-ε̂(v_i(x_t), p_i) in its view, v_i⁻¹(ε̂_i) mapped back, and ε = Σ_i w_i v_i⁻¹(ε̂_i), the ε of the step."""

    t: int
    x: torch.Tensor
    viewed: list[torch.Tensor]
    estimates: list[torch.Tensor]
    unviewed: list[torch.Tensor]
    eps: torch.Tensor


def anagram_predictor(
    denoiser: Denoiser, conds: Sequence[torch.Tensor], views: Sequence[View], weights: Sequence[float], scale: float,
    record: Callable[[AnagramStep], None] | None = None,
) -> Predictor:
    """ε = Σ_i w_i v_i⁻¹(ε_i) with ε_i the CFG estimate of view i of x_t under prompt i (one batched call); ``record``,
    if given, receives every step's ``AnagramStep``."""
    uncond = denoiser.null_condition()

    def predict(x: torch.Tensor, t: int):
        viewed = [v.apply(x) for v in views]
        preds = guided_predictions(denoiser, viewed, list(conds), uncond, t, scale)
        unviewed = [v.inverse(e) for v, (e, _) in zip(views, preds)]
        eps = sum(w * u for w, u in zip(weights, unviewed))
        if record:
            record(AnagramStep(t, x, viewed, [e for e, _ in preds], unviewed, eps))
        if preds[0][1] is None:
            return eps, None
        return eps, sum(w * v.unview_variance(var) for w, v, (_, var) in zip(weights, views, preds))

    return predict

"""Visual anagrams (1.8; flow edition 3.3): g = Σ_i w_i v_i⁻¹(CFG-ĝ(v_i(x_t), p_i)), all views and both CFG halves in one
batched call, where g is the DDPM's noise ε (``anagram_predictor``; the same combination of the predicted variances
when the model has one, DeepFloyd IF) or the flow's velocity v (``anagram_velocity``, with the flow edition's 180°
rotation as the second view). Every view here is an orthogonal map (a permutation or a rotation), so v_i⁻¹ of a
velocity field is again the velocity of the un-viewed image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lib.ddpm.sampling import NoiseModel, Predictor, guided_predictions
from lib.flow.euler import Predict, VelocityModel, guided_velocities
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
    model: NoiseModel, conds: Sequence[torch.Tensor], views: Sequence[View], weights: Sequence[float], scale: float,
    record: Callable[[AnagramStep], None] | None = None,
) -> Predictor:
    """ε = Σ_i w_i v_i⁻¹(ε_i) with ε_i the CFG estimate of view i of x_t under prompt i (one batched call); ``record``,
    if given, receives every step's ``AnagramStep``."""
    uncond = model.null_condition()

    def predict(x: torch.Tensor, t: int):
        viewed = [v.apply(x) for v in views]
        preds = guided_predictions(model, viewed, list(conds), uncond, t, scale)
        unviewed = [v.inverse(e) for v, (e, _) in zip(views, preds)]
        eps = weighted_sum(weights, unviewed)
        if record:
            record(AnagramStep(t, x, viewed, [e for e, _ in preds], unviewed, eps))
        if preds[0][1] is None:
            return eps, None
        return eps, sum(w * v.unview_variance(var) for w, v, (_, var) in zip(weights, views, preds))

    return predict


def weighted_sum(weights: Sequence[float], estimates: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_i w_i g_i: the anagram's combination of its views' estimates, mapped back to the image."""
    return sum(w * g for w, g in zip(weights, estimates, strict=True))


def anagram_velocity(model: VelocityModel, conds: Sequence[torch.Tensor], views: Sequence[View],
                     weights: Sequence[float], scale: float) -> Predict:
    """v = Σ_i w_i v_i⁻¹(CFG-v̂(v_i(x_t), p_i)) (one batched call); with the identity and the 180° rotation and
    w = (½, ½) the flow edition's 3.3: v = (v₁ + flip(CFG(flip(x_t), p₂))) / 2."""
    uncond = model.null_condition()

    def predict(x: torch.Tensor, t: float) -> torch.Tensor:
        estimates = guided_velocities(model, [v.apply(x) for v in views], list(conds), uncond, t, scale)
        return weighted_sum(weights, [v.inverse(e) for v, e in zip(views, estimates)])

    return predict

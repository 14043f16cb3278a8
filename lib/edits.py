"""Part A's edits, each a small change to the one ``denoise`` loop, generic over any ``Denoiser``.

* SDEdit (1.7):      x = forward(x_orig, t[i_start]); denoise from i_start with CFG.
* Inpainting (1.7.2, RePaint): after each step to t', x ← m·x + (1 − m)·forward(x_orig, t'), with fresh noise, so the
  kept region is at the same noise level as the generated one; the final step keeps x_orig itself (m = 1: new content).
* Visual anagrams (1.8): ε = Σ_i w_i v_i⁻¹(CFG-ε̂(v_i(x_t), p_i)) — all views and both CFG halves in one batched call.
* Hybrid images (1.9):   ε = lowpass(ε̂_1) + highpass(ε̂_2), the two prompts in one batched call.
The same combination is applied to the predicted variance v when the model has one (DeepFloyd IF).
"""

from __future__ import annotations

from typing import Sequence

import torch

from lib.filters import highpass, lowpass
from lib.sampling import Denoiser, Predictor, StepCallback, cfg_predictor, denoise, guided_predictions, noise_to, randn
from lib.views import View


def _loop(denoiser: Denoiser, x, timesteps, predict, generator, i_start=0, after_step=None, on_step=None):
    return denoise(x, timesteps, predict, denoiser.schedule, generator, variance_type=denoiser.variance_type,
                   i_start=i_start, after_step=after_step, on_step=on_step)


def sdedit(
    denoiser: Denoiser,
    image: torch.Tensor,
    *,
    cond: torch.Tensor,
    scale: float,
    i_start: int,
    stride: int,
    generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Project ``image`` ((B, C, H, W) in [−1, 1]) onto the image manifold: noise it to timesteps[i_start], denoise."""
    ts = denoiser.timesteps(stride)
    if not 0 <= i_start < len(ts) - 1:
        raise ValueError(f"i_start must lie in 0 … {len(ts) - 2} for stride {stride}")
    x = noise_to(image, ts[i_start], denoiser.schedule, generator)
    predict = cfg_predictor(denoiser, cond, denoiser.null_condition(), scale)
    return _loop(denoiser, x, ts, predict, generator, i_start, on_step=on_step)


def repaint_update(original: torch.Tensor, mask: torch.Tensor, schedule, generator: torch.Generator, final_t: int):
    """The RePaint ``after_step``: keep the generated pixels where mask = 1, the re-noised original elsewhere."""

    def after_step(x: torch.Tensor, t_prev: int) -> torch.Tensor:
        known = original if t_prev == final_t else noise_to(original, t_prev, schedule, generator)
        return mask * x + (1 - mask) * known

    return after_step


def inpaint(
    denoiser: Denoiser,
    image: torch.Tensor,
    mask: torch.Tensor,
    *,
    cond: torch.Tensor,
    scale: float,
    stride: int,
    generator: torch.Generator,
    i_start: int = 0,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Fill the region where ``mask`` = 1 (broadcastable to ``image``) with new content that fits the rest."""
    ts = denoiser.timesteps(stride)
    x = randn(image.shape, generator, like=image) if i_start == 0 else noise_to(image, ts[i_start], denoiser.schedule,
                                                                                  generator)
    predict = cfg_predictor(denoiser, cond, denoiser.null_condition(), scale)
    after = repaint_update(image, mask.to(image), denoiser.schedule, generator, ts[-1])
    return _loop(denoiser, x, ts, predict, generator, i_start, after_step=after, on_step=on_step)


def anagram_predictor(
    denoiser: Denoiser, conds: Sequence[torch.Tensor], views: Sequence[View], weights: Sequence[float], scale: float
) -> Predictor:
    """ε = Σ_i w_i v_i⁻¹(ε_i) with ε_i the CFG estimate of view i of x_t under prompt i (one batched call)."""
    uncond = denoiser.null_condition()

    def predict(x: torch.Tensor, t: int):
        preds = guided_predictions(denoiser, [v.apply(x) for v in views], list(conds), uncond, t, scale)
        eps = sum(w * v.inverse(e) for w, v, (e, _) in zip(weights, views, preds))
        if preds[0][1] is None:
            return eps, None
        return eps, sum(w * v.unview_variance(var) for w, v, (_, var) in zip(weights, views, preds))

    return predict


def hybrid_predictor(
    denoiser: Denoiser, cond_low: torch.Tensor, cond_high: torch.Tensor, scale: float,
    kernel_size: int = 33, sigma: float = 2.0,
) -> Predictor:
    """ε = lowpass(ε_1) + highpass(ε_2): prompt 1 seen from afar, prompt 2 up close (one batched call)."""
    uncond = denoiser.null_condition()

    def combine(a, b):
        return lowpass(a, kernel_size, sigma) + highpass(b, kernel_size, sigma)

    def predict(x: torch.Tensor, t: int):
        (e1, v1), (e2, v2) = guided_predictions(denoiser, [x, x], [cond_low, cond_high], uncond, t, scale)
        return combine(e1, e2), (None if v1 is None else combine(v1, v2))

    return predict


def sample_with(
    denoiser: Denoiser, predict: Predictor, *, num_samples: int, stride: int, generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Run ``predict`` (anagram, hybrid, …) from pure noise along the denoiser's strided timesteps."""
    x = randn((num_samples, *denoiser.image_shape), generator, device=denoiser.device, dtype=denoiser.dtype)
    return _loop(denoiser, x, denoiser.timesteps(stride), predict, generator, on_step=on_step)

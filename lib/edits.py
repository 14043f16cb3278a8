"""Part A's edits, each a small change to the one ``denoise`` loop, generic over any ``Denoiser``.

* SDEdit (1.7):      x = forward(x_orig, t[i_start]); denoise from i_start with CFG.
  ``sdedit_strip`` runs several i_starts as one batch along the shared tail of the timestep list.
* Inpainting (1.7.2, RePaint): after each step to t', x ← m·x + (1 − m)·forward(x_orig, t'), with fresh noise, so the
  kept region is at the same noise level as the generated one; the final step keeps x_orig itself (m = 1: new content).
  With resampling (``lib.repaint``) the loop runs down ``jump_length`` steps and jumps back up by re-noising,
  x_t = √(ᾱ_t/ᾱ_t') x_t' + √(1 − ᾱ_t/ᾱ_t') z, ``jump_n_sample`` times.
* Visual anagrams (1.8): ε = Σ_i w_i v_i⁻¹(CFG-ε̂(v_i(x_t), p_i)) — all views and both CFG halves in one batched call.
* Hybrid images (1.9):   ε = lowpass(ε̂_1) + highpass(ε̂_2), the two prompts in one batched call; in general
  (factorized diffusion) ε = Σ_i f_i(ε̂_i) for linear filters with Σ_i f_i = id (``lib.filters.Decomposition``).
The same combination is applied to the predicted variance v when the model has one (DeepFloyd IF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lib.diffusion import ddpm_step
from lib.filters import Decomposition, two_band
from lib.repaint import descents, jump_back, resampling_path
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
    ts = _sdedit_timesteps(denoiser, stride, [i_start])
    x = noise_to(image, ts[i_start], denoiser.schedule, generator)
    predict = cfg_predictor(denoiser, cond, denoiser.null_condition(), scale)
    return _loop(denoiser, x, ts, predict, generator, i_start, on_step=on_step)


def _sdedit_timesteps(denoiser: Denoiser, stride: int, i_starts: Sequence[int]) -> list[int]:
    """The strided timesteps, after checking that every i_start leaves at least one step to run."""
    ts = denoiser.timesteps(stride)
    for i_start in i_starts:
        if not 0 <= i_start < len(ts) - 1:
            raise ValueError(f"i_start must lie in 0 … {len(ts) - 2} for stride {stride}")
    return ts


def sdedit_strip(
    denoiser: Denoiser,
    image: torch.Tensor,
    *,
    cond: torch.Tensor,
    scale: float,
    i_starts: Sequence[int],
    stride: int,
    seed: int,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """SDEdit of ``image`` ((1, C, H, W)) for every i_start (ascending) in ONE batched run: (len(i_starts), C, H, W).

    With N = len(timesteps) − 1, the edit from i_start runs the last K = N − i_start steps, all of which lie on the tail
    that the smallest i_start runs. So the loop walks that tail once; the edit for i_start joins the batch (noised to
    timesteps[i_start]) when the loop reaches step i_start. Every row draws its noise from its own generator seeded
    with ``seed``, in the order its own run would, so row r equals ``sdedit(i_start=i_starts[r])`` with that seed.
    Cost: N − min(i_start) model calls instead of Σ (N − i_start); the rows stay Σ (N − i_start) (× 2 with CFG).
    """
    if list(i_starts) != sorted(i_starts) or not i_starts:
        raise ValueError(f"i_starts must be a non-empty ascending list, got {list(i_starts)}")
    ts = _sdedit_timesteps(denoiser, stride, i_starts)
    gens = [torch.Generator(device=denoiser.device).manual_seed(seed) for _ in i_starts]
    predict = cfg_predictor(denoiser, cond, denoiser.null_condition(), scale)
    x, joined = image[:0], 0
    with torch.no_grad():
        for i in range(i_starts[0], len(ts) - 1):
            while joined < len(i_starts) and i_starts[joined] == i:
                x = torch.cat([x, noise_to(image, ts[i], denoiser.schedule, gens[joined])])
                joined += 1
            eps, var = predict(x, ts[i])
            noise = torch.cat([randn(image.shape, g, like=image) for g in gens[:joined]])
            x, x0 = ddpm_step(x, eps, ts[i], ts[i + 1], denoiser.schedule, variance_type=denoiser.variance_type,
                              predicted_variance=var, noise=noise)
            if on_step is not None:
                on_step(i, ts[i + 1], x, x0)
    return x


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
    jump_length: int = 1,
    jump_n_sample: int = 1,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Fill the region where ``mask`` = 1 (broadcastable to ``image``; soft values blend) with new content that fits
    the rest. ``jump_n_sample`` > 1 adds RePaint's resampling (``lib.repaint``): each run of steps down is followed by
    a jump back ``jump_length`` steps, so the model sees the kept region again; 1 is the plain RePaint loop."""
    ts = denoiser.timesteps(stride)
    x = randn(image.shape, generator, like=image) if i_start == 0 else noise_to(image, ts[i_start], denoiser.schedule,
                                                                                  generator)
    predict = cfg_predictor(denoiser, cond, denoiser.null_condition(), scale)
    after = repaint_update(image, mask.to(image), denoiser.schedule, generator, ts[-1])
    path = [i_start + p for p in resampling_path(len(ts) - 1 - i_start, jump_length, jump_n_sample)]
    runs = descents(path)
    for n, (first, last) in enumerate(runs):
        x = _loop(denoiser, x, ts[: last + 1], predict, generator, first, after_step=after, on_step=on_step)
        if n + 1 < len(runs):
            x = jump_back(x, ts[last], ts[runs[n + 1][0]], denoiser.schedule, generator)
    return x


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


def sample_with(
    denoiser: Denoiser, predict: Predictor, *, num_samples: int, stride: int, generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Run ``predict`` (anagram, hybrid, …) from pure noise along the denoiser's strided timesteps."""
    x = randn((num_samples, *denoiser.image_shape), generator, device=denoiser.device, dtype=denoiser.dtype)
    return _loop(denoiser, x, denoiser.timesteps(stride), predict, generator, on_step=on_step)

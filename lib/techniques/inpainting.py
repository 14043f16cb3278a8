"""Inpainting (1.7.2, RePaint): after each step to t', x ← m·x + (1 − m)·forward(x_orig, t'), with fresh noise, so the
kept region is at the same noise level as the generated one; the final step keeps x_orig itself (m = 1: new content).
With resampling (``lib.techniques.repaint``) the loop runs down ``jump_length`` steps and jumps back up by re-noising,
x_t = √(ᾱ_t/ᾱ_t') x_t' + √(1 − ᾱ_t/ᾱ_t') z, ``jump_n_sample`` times. The same combination is applied to the predicted
variance v when the model has one (DeepFloyd IF).

The flow form (not part of the flow edition, which dropped inpainting; its natural analogue): after each Euler step to
t', x ← m·x + (1 − m)·((1 − t')·ε + t'·x_orig) with the run's own ε (``known_pixels_after_step``), so the kept region
lies on the straight path the run started on, and at t' = 1 it is x_orig itself; ``flow_inpaint`` runs it from
pure noise.

A mask (1 = regenerate) must leave something to regenerate and something to keep (``mask_problem``): an empty one
changes nothing, and one over the whole image keeps nothing — that is plain sampling from noise."""

from __future__ import annotations

import torch

from lib.ddpm.sampling import NoiseModel, StepCallback, cfg_predictor, denoise_on, noise_to, randn
from lib.flow.euler import AfterStep, VelocityModel, euler
from lib.flow.euler import StepCallback as FlowStepCallback
from lib.flow.euler import cfg_predictor as cfg_velocity
from lib.flow.path import interpolate
from lib.techniques.repaint import descents, jump_back, resampling_path


def mask_problem(mask) -> str:
    """Why a mask (1 = regenerate; soft values blend) cannot be inpainted, in one sentence; "" if it can: it must
    regenerate some pixel (max > 0) and keep some other one (min < 1)."""
    if float(mask.max()) <= 0:
        return "The mask covers no pixel, so there is nothing to regenerate: paint more of the image, or pick a preset."
    if float(mask.min()) >= 1:
        return ("The mask covers the whole image, so nothing of it is kept and inpainting would be plain sampling "
                "from noise: leave part of the image unpainted, or pick a preset.")
    return ""


def repaint_update(original: torch.Tensor, mask: torch.Tensor, schedule, generator: torch.Generator, final_t: int):
    """The RePaint ``after_step``: keep the generated pixels where mask = 1, the re-noised original elsewhere."""

    def after_step(x: torch.Tensor, t_prev: int) -> torch.Tensor:
        known = original if t_prev == final_t else noise_to(original, t_prev, schedule, generator)
        return mask * x + (1 - mask) * known

    return after_step


def known_pixels_after_step(original: torch.Tensor, mask: torch.Tensor, eps: torch.Tensor) -> AfterStep:
    """The flow inpainting ``after_step``: x ← m·x + (1 − m)·((1 − t')·ε + t'·x_orig), new content where m = 1."""

    def after_step(x: torch.Tensor, t_next: float) -> torch.Tensor:
        return mask * x + (1 - mask) * interpolate(original, eps, t_next)

    return after_step


def flow_inpaint(model: VelocityModel, image: torch.Tensor, mask: torch.Tensor, eps: torch.Tensor, *,
                 cond: torch.Tensor, scale: float, h: float, on_step: FlowStepCallback | None = None) -> torch.Tensor:
    """Fill the region where ``mask`` = 1 of ``image`` ((B, C, H, W) in the model's value range) with new content:
    Euler steps of ``h`` with guidance ``scale`` from x_0 = ``eps`` (t = 0) to t = 1, the known pixels put back on the
    path from ``eps`` after every step (``known_pixels_after_step``); where mask = 0 the result is ``image`` exactly."""
    predict = cfg_velocity(model, cond, model.null_condition(), scale)
    return euler(eps, 0.0, h, predict, after_step=known_pixels_after_step(image, mask.to(image), eps), on_step=on_step)


def inpaint(
    model: NoiseModel,
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
    the rest. ``jump_n_sample`` > 1 adds RePaint's resampling (``lib.techniques.repaint``): each run of steps down is followed by
    a jump back ``jump_length`` steps, so the model sees the kept region again; 1 is the plain RePaint loop."""
    ts = model.timesteps(stride)
    x = randn(image.shape, generator, like=image) if i_start == 0 else noise_to(image, ts[i_start], model.schedule,
                                                                                  generator)
    predict = cfg_predictor(model, cond, model.null_condition(), scale)
    after = repaint_update(image, mask.to(image), model.schedule, generator, ts[-1])
    path = [i_start + p for p in resampling_path(len(ts) - 1 - i_start, jump_length, jump_n_sample)]
    runs = descents(path)
    for n, (first, last) in enumerate(runs):
        x = denoise_on(model, x, ts[: last + 1], predict, generator, first, after_step=after, on_step=on_step)
        if n + 1 < len(runs):
            x = jump_back(x, ts[last], ts[runs[n + 1][0]], model.schedule, generator)
    return x

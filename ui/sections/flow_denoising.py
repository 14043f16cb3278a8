"""Sections 1.1 – 1.3 of the flow edition · the noisy inputs of the straight path x_t = (1 − t) ε + t x₁ (one ε for
every t), classical denoising — x_t / t restores the image's amplitude, then the Gaussian blur of least MSE among the
notebook's σ — and the one-step estimate x̂₁ = x_t + (1 − t) v̂. Sections 1.4 and 1.5 start from the same x_t
(``noisy_inputs``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
import torch.nn.functional as F

from lib.ddpm.sampling import randn
from lib.flow.denoising import COURSE_SIGMAS, BlurSweep, best_blur
from lib.flow.path import interpolate, one_step_estimate
from lib.guidance import condition_rows
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.flow_backend import FlowBackend
from ui.report_kit import Context, Heading, Piece, one, shown_flow_input, upscale_for


@dataclass(frozen=True, kw_only=True)
class Defaults:
    t: float = 0.5  # the slider's start
    course_times: tuple[float, ...] = (0.25, 0.5, 0.75)  # §1.1's three times, from one ε
    sigmas: tuple[float, ...] = COURSE_SIGMAS  # §1.2's sweep


DEFAULTS = Defaults()


def noisy_inputs(backend: FlowBackend, image: np.ndarray, times: tuple[float, ...], seed: int):
    """x₁ (1, C, H, W) in the model's pixel range, ε ~ N(0, I) from ``seed`` and x_t for each t (len(times), C, H, W):
    the one ε shared by every t, as the notebook reuses it."""
    x1 = backend.image(image)
    eps = randn(x1.shape, torch.Generator().manual_seed(seed), like=x1)
    return x1, eps, torch.cat([interpolate(x1, eps, t) for t in times])


def mse_per_row(x: torch.Tensor, x1: torch.Tensor) -> list[float]:
    """The mean squared error of each image of ``x`` against the clean ``x1``, in the model's pixel range."""
    return F.mse_loss(x, x1.expand_as(x), reduction="none").flatten(1).mean(1).tolist()


@dataclass(frozen=True)
class Denoised:
    """For each t: x_t, its σ sweep (None at t = 0, where x_t holds nothing of the image) and the one-step estimate."""

    times: tuple[float, ...]
    noisy: torch.Tensor  # (len(times), C, H, W) in the model's pixel range, like the others
    sweeps: tuple[BlurSweep | None, ...]
    one_step: torch.Tensor
    one_step_mse: tuple[float, ...]
    noisy_mse: tuple[float, ...]

    def at(self, t: float) -> Denoised:
        """The result at one of its times alone."""
        i = self.times.index(t)
        return Denoised((t,), self.noisy[i:i + 1], self.sweeps[i:i + 1], self.one_step[i:i + 1],
                        self.one_step_mse[i:i + 1], self.noisy_mse[i:i + 1])


@st.cache_data(show_spinner="Denoising…", max_entries=64)
def denoised(cache_id: str, image: np.ndarray, times: tuple[float, ...], prompt: str, seed: int,
             sigmas: tuple[float, ...], _backend: FlowBackend) -> Denoised:
    """§1.1 – 1.3 at each of ``times``: one batched model call for the one-step estimates, conditioned on ``prompt``
    without guidance (the weights ``cache_id`` names)."""
    model = _backend.model
    x1, _, noisy = noisy_inputs(_backend, image, times, seed)
    sweeps = tuple(best_blur(noisy[i:i + 1], t, x1, sigmas) if t > 0 else None for i, t in enumerate(times))
    t = torch.tensor(times)
    cond = condition_rows(model.encode_prompt(prompt), len(times))
    with torch.no_grad():
        v = model.velocity(noisy.to(model.device), t, cond).float().cpu()
    one_step = one_step_estimate(noisy, t, v)
    return Denoised(times, noisy, sweeps, one_step, tuple(mse_per_row(one_step, x1)), tuple(mse_per_row(noisy, x1)))


def at_time(course: Denoised, t: float, cache_id: str, image: np.ndarray, prompt: str, seed: int,
            backend: FlowBackend) -> Denoised:
    """The slider's t: taken from the course's three (``course``, the same ε and model call) when it is one of them,
    else computed on its own."""
    if t in course.times:
        return course.at(t)
    return denoised(cache_id, image, (t,), prompt, seed, DEFAULTS.sigmas, backend)


# --- the report --------------------------------------------------------------------------------------------------------

NOISY = Heading("flow_denoising.noisy", "1.1", "Noisy inputs on the straight path")
BLUR = Heading("flow_denoising.blur", "1.2", "Classical denoising: x_t / t, then the best blur")
ONE_STEP = Heading("flow_denoising.one_step", "1.3", "One-step denoising")


def _report(c: Context):
    flow, picked, prompt = shown_flow_input(c)
    g = DEFAULTS
    course = denoised(flow.cache_id, picked.array, g.course_times, prompt, c.seed, g.sigmas, flow)
    x1, lo_hi, n = flow.image(picked.array), flow.model.value_range, len(course.times)
    up = upscale_for(flow.size)
    times = ", ".join(f"{t:g}" for t in course.times)
    common = {"image": picked.caption, "t": times, "noise seed": c.seed}
    noisy = NOISY.made(common, [png_figure(grid(x1, 1, lo_hi, upscale=up), "original x₁"),
                                png_figure(grid(course.noisy, n, lo_hi, upscale=up), f"x_t at t = {times}")],
                       "x_t = (1 − t)·ε + t·x₁ with one ε for every t: t = 0 is pure noise, t = 1 the image.")
    blurs = torch.cat([s.best for s in course.sweeps])
    blur = BLUR.made({**common, "σ tried": ", ".join(f"{s:g}" for s in g.sigmas),
                      "best σ per t": ", ".join(f"{s.best_sigma:g}" for s in course.sweeps),
                      "MSE of the best blur per t": ", ".join(f"{min(s.errors):.4f}" for s in course.sweeps)},
                     [png_figure(grid(torch.cat([course.noisy, blurs]), n, lo_hi, upscale=up),
                                 "rows: x_t, then G_σ(x_t / t) at the σ of least MSE")])
    one_step = ONE_STEP.made({**common, "prompt": quoted_prompt(prompt), "guidance": "none (the conditional velocity)",
                              "MSE of x_t per t": ", ".join(f"{e:.4f}" for e in course.noisy_mse),
                              "MSE of x̂₁ per t": ", ".join(f"{e:.4f}" for e in course.one_step_mse)},
                             [png_figure(grid(torch.cat([course.noisy, course.one_step]), n, lo_hi, upscale=up),
                                         "rows: x_t, then the one-step estimate x̂₁ = x_t + (1 − t)·v̂")],
                             f"MSE in the model's pixel range [{lo_hi[0]:g}, {lo_hi[1]:g}].")
    return [noisy, blur, one_step], None


REPORT = (Piece((NOISY, BLUR, ONE_STEP), "1.1 – 1.3 · noisy inputs and one-step denoising", one, _report),)

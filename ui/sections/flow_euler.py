"""Section 1.5 of the flow edition · Euler sampling from a noisy input: x_{t+h} = x_t + h·v̂ from the x_t of 1.1
(``flow_denoising.noisy_inputs``) at t_start = 0.5 to t = 1, every 5th state kept, and the result compared with the
one-step estimate (1.3) and the best blur (1.2) by MSE and by sharpness (``lib.flow.denoising.sharpness``): the course's
own validation found the one-step estimate ahead on MSE while Euler looks sharper, so the page reports both."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
import torch.nn.functional as F

from lib.flow.denoising import BlurSweep, best_blur, sharpness
from lib.flow.euler import cfg_predictor, euler, euler_step_count
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.common import counted
from ui.flow_backend import STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, one, shown_flow_input, upscale_for
from ui.sections import flow_denoising


@dataclass(frozen=True, kw_only=True)
class Defaults:
    t_start: float = 0.5  # the course starts from its saved t = 0.50 input
    h: float = STEP  # 25 updates from 0.5
    every: int = 5  # the states shown: every 5th update (t = 0.50, 0.60, …, 1.00)
    t_range: tuple[float, float] = (0.05, 0.95)  # the start slider's: x_t / t (the blur) needs t > 0
    step_sizes: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)  # the page's choices of h


DEFAULTS = Defaults()
ESTIMATES = ("one-step x̂₁", "Euler", "best blur")  # the three compared, in the table's order


@dataclass(frozen=True)
class EulerRun:
    """The kept states (the start, every ``every``-th update, the last) at their times, and the three estimates of x₁
    with their MSE against it and their sharpness (the original's last)."""

    states: torch.Tensor  # (K, C, H, W) in the model's pixel range, like the estimates
    times: tuple[float, ...]
    steps: int
    estimates: torch.Tensor  # (3, C, H, W) in the order of ESTIMATES
    blur: BlurSweep
    mse: tuple[float, ...]  # per estimate
    sharpness: tuple[float, ...]  # per estimate, then the original's


@st.cache_data(show_spinner="Integrating…", max_entries=32)
def euler_run(cache_id: str, image: np.ndarray, t_start: float, h: float, every: int, prompt: str, seed: int,
              _backend: FlowBackend) -> EulerRun:
    """Euler from x_{t_start} to 1 with step h, conditioned on ``prompt`` without guidance (the weights
    ``cache_id`` names); the one-step estimate is the first step's own x̂₁."""
    model = _backend.model
    x1, _, noisy = flow_denoising.noisy_inputs(_backend, image, (t_start,), seed)
    cond = model.encode_prompt(prompt)
    states, times, first = [noisy], [t_start], []
    steps = euler_step_count(t_start, h)

    def keep(k: int, t: float, x: torch.Tensor, estimate: torch.Tensor) -> None:
        if k == 0:
            first.append(estimate.float().cpu())
        if (k + 1) % every == 0 or k + 1 == steps:
            states.append(x.float().cpu())
            times.append(t)

    final = euler(noisy.to(model.device), t_start, h, cfg_predictor(model, cond, model.null_condition(), 1.0),
                  on_step=keep).float().cpu()
    blur = best_blur(noisy, t_start, x1)
    estimates = torch.cat([first[0], final, blur.best])
    mse = F.mse_loss(estimates, x1.expand_as(estimates), reduction="none").flatten(1).mean(1)
    return EulerRun(torch.cat(states), tuple(times), steps, estimates, blur, tuple(mse.tolist()),
                    tuple(sharpness(torch.cat([estimates, x1])).tolist()))


# --- the report --------------------------------------------------------------------------------------------------------

EULER = Heading("flow_euler", "1.5", "Euler sampling from t = 0.5, against the one-step estimate and the blur")


def _report(c: Context):
    flow, picked, prompt = shown_flow_input(c)
    g = DEFAULTS
    run = euler_run(flow.cache_id, picked.array, g.t_start, g.h, g.every, prompt, c.seed, flow)
    lo_hi, up = flow.model.value_range, upscale_for(flow.size)
    names = [ESTIMATES[0], f"Euler, {counted(run.steps, 'step')}", f"{ESTIMATES[2]} (σ = {run.blur.best_sigma:g})"]
    closest = names[min(range(3), key=run.mse.__getitem__)]
    sharpest = names[max(range(3), key=run.sharpness.__getitem__)]
    settings = {"image": picked.caption, "t_start": g.t_start, "h": g.h, "noise seed": c.seed,
                "prompt": quoted_prompt(prompt), "guidance": "none (the conditional velocity)",
                "MSE": "; ".join(f"{n}: {e:.4f}" for n, e in zip(names, run.mse)),
                "sharpness (mean Laplacian²)": "; ".join(f"{n}: {s:.4f}" for n, s in
                                                          zip([*names, "original"], run.sharpness))}
    figures = [png_figure(grid(run.states, len(run.states), lo_hi, upscale=up),
                          " · ".join(f"t = {t:.2f}" for t in run.times) + f" (the start, every {g.every}th update, "
                                                                           "the end)"),
               png_figure(grid(torch.cat([flow.image(picked.array), run.estimates]), 4, lo_hi, upscale=up),
                          "original · " + " · ".join(names))]
    return [EULER.made(settings, figures, f"Here the {closest} wins on MSE and the {sharpest} is the sharpest.")], None


REPORT = (Piece((EULER,), "1.5 · Euler sampling", one, _report),)

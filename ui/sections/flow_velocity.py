"""Section 1.4 of the flow edition · visualising velocity: over the remaining time 1 − t, the model's update
(1 − t)·v̂ against the true one x₁ − x_t = (1 − t)(x₁ − ε), and the per-pixel error map E_t between them
(``lib.flow.denoising.velocity_diagnostics``), at the times and from the x_t of 1.1
(``flow_denoising.noisy_inputs``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from lib.flow.denoising import VelocityDiagnostics, symmetric_limit, velocity_diagnostics
from lib.guidance import condition_rows
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.flow_backend import FlowBackend
from ui.report_kit import Context, Heading, Piece, one, shown_flow_input, upscale_for
from ui.sections import flow_denoising


@dataclass(frozen=True, kw_only=True)
class Defaults:
    times: tuple[float, ...] = flow_denoising.DEFAULTS.course_times  # 1.1's three, the same ε


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Predicting velocities…", max_entries=32)
def diagnostics(cache_id: str, image: np.ndarray, times: tuple[float, ...], prompt: str, seed: int,
                _backend: FlowBackend) -> tuple[torch.Tensor, VelocityDiagnostics]:
    """x_t at each of ``times`` and its diagnostics: one batched model call conditioned on ``prompt`` without guidance
    (the weights ``cache_id`` names)."""
    model = _backend.model
    x1, eps, noisy = flow_denoising.noisy_inputs(_backend, image, times, seed)
    t = torch.tensor(times)
    with torch.no_grad():
        v = model.velocity(noisy.to(model.device), t, condition_rows(model.encode_prompt(prompt), len(times)))
    return noisy, velocity_diagnostics(x1, eps, t, v.float().cpu())


# --- the report --------------------------------------------------------------------------------------------------------

VELOCITY = Heading("flow_velocity", "1.4", "Visualizing velocity: predicted and true updates, and their error")


def _report(c: Context):
    flow, picked, prompt = shown_flow_input(c)
    noisy, d = diagnostics(flow.cache_id, picked.array, DEFAULTS.times, prompt, c.seed, flow)
    n, lo_hi, up = len(DEFAULTS.times), flow.model.value_range, upscale_for(flow.size)
    limit, zmax = symmetric_limit(d.predicted_update, d.true_update), d.error_map.max().item()
    times = ", ".join(f"{t:g}" for t in DEFAULTS.times)
    settings = {"image": picked.caption, "t": times, "noise seed": c.seed, "prompt": quoted_prompt(prompt),
                "guidance": "none (the conditional velocity)",
                "mean E per t": ", ".join(f"{e:.4f}" for e in d.error_map.mean(dim=(1, 2)).tolist())}
    figures = [png_figure(grid(flow.image(picked.array), 1, lo_hi, upscale=up), f"original x₁ ({picked.caption})"),
               png_figure(grid(noisy, n, lo_hi, upscale=up), f"x_t at t = {times}"),
               png_figure(grid(torch.cat([d.predicted_update, d.true_update]), n, (-limit, limit), upscale=up),
                          f"top: predicted update (1 − t)·v̂; bottom: true update x₁ − x_t; one scale "
                          f"[−{limit:.2f}, {limit:.2f}], mid-grey = 0"),
               png_figure(grid(d.error_map.unsqueeze(1), n, (0.0, zmax), upscale=up),
                          f"error maps E_t, one scale for every t: black 0, white {zmax:.3f}")]
    return [VELOCITY.made(settings, figures, "The same ε as in 1.1 – 1.3.")], None


REPORT = (Piece((VELOCITY,), "1.4 · visualizing velocity", one, _report),)

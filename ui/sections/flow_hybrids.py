"""Section 3.4 of the flow edition · hybrid images by factorized diffusion on the velocity: v = lowpass(v₁) +
(v₂ − lowpass(v₂)) — the far view from prompt 1, the detail from prompt 2 (``lib.techniques.hybrids``) — with the
course's Gaussian low-pass, σ = 16 at 512 px, scaled to the model's image size (``lowpass_scaled_to``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler, scale_from_course_w
from lib.techniques.filters import two_band
from lib.techniques.hybrids import factorized_velocity
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from lib.techniques.filters import lowpass
from lib.techniques.hybrids import lowpass_scaled_to
from ui.flow_backend import GUIDANCE_W, STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, one, shown_flow_backend, upscale_for


@dataclass(frozen=True, kw_only=True)
class Defaults:
    far: str = "0"  # prompt 1: the low frequencies, seen from far
    near: str = "5"  # prompt 2: the detail, seen up close
    samples: int = 4
    sigma_at_512: float = 16.0  # the course's σ at 512 px, scaled to the image size
    h: float = STEP
    w: float = GUIDANCE_W


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling hybrids…", max_entries=32)
def hybrids(cache_id: str, far: str, near: str, kernel: int, sigma: float, w: float, h: float, num: int, seed: int,
            _backend: FlowBackend) -> torch.Tensor:
    """``num`` hybrids from x_0 ~ N(0, I) of a generator seeded with ``seed``, low frequencies from ``far`` and high
    from ``near`` (a Gaussian of ``kernel`` taps and ``sigma``), with the weights ``cache_id`` names; (num, C, H, W)
    in the model's pixel range."""
    model = _backend.model
    x0 = randn((num, *model.image_shape), torch.Generator().manual_seed(seed), device=model.device, dtype=model.dtype)
    predict = factorized_velocity(model, [model.encode_prompt(far), model.encode_prompt(near)],
                                  two_band(kernel, sigma), scale_from_course_w(w))
    return euler(x0, 0.0, h, predict).float().cpu()


# --- the report --------------------------------------------------------------------------------------------------------

HYBRIDS = Heading("flow_hybrids", "3.4", "Hybrid images")


def _report(c: Context):
    flow = shown_flow_backend(c)
    g = DEFAULTS
    kernel, sigma = lowpass_scaled_to(flow.size, g.sigma_at_512)
    images = hybrids(flow.cache_id, g.far, g.near, kernel, sigma, g.w, g.h, g.samples, c.seed, flow)
    lo_hi, up = flow.model.value_range, upscale_for(flow.size)
    settings = {"prompt 1 (from far)": quoted_prompt(g.far), "prompt 2 (up close)": quoted_prompt(g.near),
                "low-pass": f"Gaussian σ = {sigma:.3g} px, {kernel} taps (σ {g.sigma_at_512:g} at 512 px, scaled)",
                "guidance w": g.w, "h": g.h, "samples": g.samples, "seed": c.seed}
    figures = [png_figure(grid(images, g.samples, lo_hi, upscale=up), f"up close: {quoted_prompt(g.near)}"),
               png_figure(grid(images, g.samples, lo_hi), "from far (actual size)"),
               png_figure(grid(lowpass(images, kernel, sigma), g.samples, lo_hi, upscale=up),
                          f"their low frequencies alone (what the far view sees): {quoted_prompt(g.far)}")]
    return [HYBRIDS.made(settings, figures)], None


REPORT = (Piece((HYBRIDS,), "3.4 · hybrid images", one, _report),)

"""Section 3.4 of the flow edition · hybrid images by factorized diffusion on the velocity: v = lowpass(v₁) +
(v₂ − lowpass(v₂)) — the far view from prompt 1, the detail from prompt 2 (``lib.techniques.hybrids``) — with the
course's Gaussian low-pass (σ = 16 and 265 taps at 512 px; its taps scaled to the model's image size by
``lowpass_scaled_to``). On the MNIST flow model σ is the one measured to make hybrids (``low_pass``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler, scale_from_course_w
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from lib.techniques.filters import lowpass, two_band
from lib.techniques.hybrids import factorized_velocity, lowpass_scaled_to
from ui.flow_backend import STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, euler_steps_at, shown_flow_backend, upscale_for


@dataclass(frozen=True, kw_only=True)
class Defaults:
    far: str  # prompt 1: the low frequencies, seen from far
    near: str  # prompt 2: the detail, seen up close
    samples: int = 4
    h: float = STEP
    w: float = 7.0  # the course's w; on MNIST too it beats the model's w = 4 (16 against 14 of 16 hybrids at σ 2)


COURSE_SIGMA_AT_512 = 16.0  # the course's σ at 512 px, scaled to the image size
# σ on the 28-px MNIST flow model, measured with the app's digit judge (bench/RESULTS.md, "Flow edition part A on MNIST"):
# the course's σ scaled to 28 px (0.875) leaves the whole digit to prompt 1 (16 of 16 read as prompt 1 up close too);
# at σ 2 every sample of 0 / 5 reads as 0 from far and 5 up close
MNIST_SIGMA = 2.0
DEFAULTS = {"mnist": Defaults(far="0", near="5"),  # measured (bench/flow_lessons.py)
            "pixnerd": Defaults(far="a lithograph of a skull", near="a lithograph of waterfalls")}  # the course's
MNIST_NO_HYBRID_BELOW = 1.75  # σ: below it the MNIST flow model's "hybrids" read as prompt 1 up close too (measured)
MNIST_NO_HYBRID = (
    "**At this σ there is no hybrid on MNIST**: the low band takes the whole digit, so up close the image still reads "
    "as prompt 1. Measured with the app's digit judge (0 / 5, 16 samples, w 7): at the course's σ scaled to 28 px "
    "(0.875) none of 16 reads as the 5 up close, at σ 1.5 3 of 16, at σ 2 all 16 read right far and near "
    f"(bench/RESULTS.md, \"Flow edition part A on MNIST\"). Try σ ≥ {MNIST_NO_HYBRID_BELOW:g}.")


def low_pass(size: int, family: str, sigma: float | None = None) -> tuple[int, float]:
    """(taps, σ) of the hybrids' Gaussian: the course's taps scaled to ``size`` (15 at 28 px); σ as given, else the
    MNIST model's measured σ, else the course's σ scaled to ``size``."""
    kernel, course_sigma = lowpass_scaled_to(size, COURSE_SIGMA_AT_512)
    if sigma is None:
        sigma = MNIST_SIGMA if family == "mnist" else course_sigma
    return kernel, sigma


@st.cache_data(show_spinner=False, max_entries=32)  # its callers show a progress bar
def hybrids(cache_id: str, far: str, near: str, kernel: int, sigma: float, w: float, h: float, num: int, seed: int,
            _backend: FlowBackend, _on_step=None) -> torch.Tensor:
    """``num`` hybrids from x_0 ~ N(0, I) of a generator seeded with ``seed``, low frequencies from ``far`` and high
    from ``near`` (a Gaussian of ``kernel`` taps and ``sigma``), with the weights ``cache_id`` names; (num, C, H, W)
    in the model's pixel range. ``_on_step``: a progress bar."""
    model = _backend.model
    x0 = randn((num, *model.image_shape), torch.Generator().manual_seed(seed), device=model.device, dtype=model.dtype)
    predict = factorized_velocity(model, [model.encode_prompt(far), model.encode_prompt(near)],
                                  two_band(kernel, sigma), scale_from_course_w(w))
    return euler(x0, 0.0, h, predict, on_step=_on_step).float().cpu()


def sigma_origin(size: int, sigma: float) -> str:
    """Where a σ comes from, in words: the course's scaled to ``size``, the MNIST measurement's, or the student's."""
    course = lowpass_scaled_to(size, COURSE_SIGMA_AT_512)[1]
    if sigma == course:
        return f"the course's σ {COURSE_SIGMA_AT_512:g} at 512 px, scaled to {size} px"
    if sigma == MNIST_SIGMA:
        return (f"measured for the MNIST model; the course's σ {COURSE_SIGMA_AT_512:g} at 512 px would be "
                f"{course:.3g} here")
    return f"chosen; the course's σ {COURSE_SIGMA_AT_512:g} at 512 px would be {course:.3g} here"


# --- the report --------------------------------------------------------------------------------------------------------

HYBRIDS = Heading("flow_hybrids", "3.4", "Hybrid images")


def _report(c: Context):
    flow = shown_flow_backend(c)
    g = DEFAULTS[flow.family]
    kernel, sigma = low_pass(flow.size, flow.family)
    images = hybrids(flow.cache_id, g.far, g.near, kernel, sigma, g.w, g.h, g.samples, c.seed, flow, c.progress)
    lo_hi, up = flow.model.value_range, upscale_for(flow.size)
    settings = {"prompt 1 (from far)": quoted_prompt(g.far), "prompt 2 (up close)": quoted_prompt(g.near),
                "low-pass": f"Gaussian σ = {sigma:.3g} px, {kernel} taps ({sigma_origin(flow.size, sigma)})",
                "guidance w": g.w, "h": g.h, "samples": g.samples, "seed": c.seed}
    figures = [png_figure(grid(images, g.samples, lo_hi, upscale=up), f"up close: {quoted_prompt(g.near)}"),
               png_figure(grid(images, g.samples, lo_hi), "from far (actual size)"),
               png_figure(grid(lowpass(images, kernel, sigma), g.samples, lo_hi, upscale=up),
                          f"their low frequencies alone (what the far view sees): {quoted_prompt(g.far)}")]
    return [HYBRIDS.made(settings, figures)], None


REPORT = (Piece((HYBRIDS,), "3.4 · hybrid images", euler_steps_at(DEFAULTS), _report),)

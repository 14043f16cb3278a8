"""An extra of the flow edition, "3.2+" (not part of the Fall 2026 assignment, which dropped inpainting): the DDPM
edition's 1.7.2 in flow form. Euler steps from pure noise ε at t = 0, and after every step to t' the pixels to keep
(mask m = 0) are put back on their straight path, x ← m·x + (1 − m)·((1 − t')·ε + t'·x_orig)
(``lib.techniques.inpainting.flow_inpaint``); at t' = 1 that is x_orig itself, so the result keeps them exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler_step_count, scale_from_course_w
from lib.media.costs import Cost, CountingNoiseModel, CountingVelocityModel
from lib.media.images import grid, rescaled
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from lib.techniques.inpainting import flow_inpaint
from ui.common import counted
from ui.flow_backend import STEP, FlowBackend
from ui.part_a import SAMPLES_DEFAULT, masked_view, preset_masks
from ui.report_kit import Context, Heading, Piece, shown_flow_input, upscale_for
from ui.sections import BY_SLUG

SECTION = BY_SLUG["flow_inpainting"]  # its number says it is an extra: the report's heading is the page's


@dataclass(frozen=True, kw_only=True)
class Defaults:
    mask: str = "top half"  # a preset of ``ui.part_a.preset_masks``: the digit's lower half is kept
    samples: int = SAMPLES_DEFAULT
    h: float = STEP  # the course's Euler step: 50 steps from noise; guidance: the model's own
    # (``FlowBackend.guidance_w``); the seed is every page's one default, ``ui.backend.DEFAULT_SEED``


DEFAULTS = Defaults()


def euler_steps() -> int:
    """The Euler steps of one inpainting run: from t = 0 to 1 by ``DEFAULTS.h``."""
    return euler_step_count(0.0, DEFAULTS.h)


@st.cache_data(show_spinner=False, max_entries=32)
def inpaintings(cache_id: str, image: np.ndarray, mask: np.ndarray, prompt: str, w: float, h: float, num: int,
                seed: int, _backend: FlowBackend, _on_step=None) -> tuple[torch.Tensor, Cost]:
    """``num`` inpaintings of ``image`` ((C, H, W) in [−1, 1]) where ``mask`` ((1, 1, H, W), 1 = regenerate) is 1, in
    one batch, from noises ε ~ N(0, I) of a generator seeded with ``seed``, guided by ``prompt`` with w in the course's
    form, by the weights ``cache_id`` names: ((num, C, H, W) in the model's pixel range, what the model calls cost)."""
    counter = CountingNoiseModel(None)  # only its cost: the velocity calls are added to it
    model = CountingVelocityModel(_backend.model, counter)
    x1 = _backend.image(image).to(model.device, model.dtype).expand(num, -1, -1, -1)
    eps = randn(x1.shape, torch.Generator(device=model.device).manual_seed(seed), like=x1)
    result = flow_inpaint(model, x1, torch.from_numpy(mask), eps, cond=model.encode_prompt(prompt),
                          scale=scale_from_course_w(w), h=h, on_step=_on_step)
    return result.float().cpu(), counter.cost


def strip(backend: FlowBackend, image: np.ndarray, mask: np.ndarray, result: torch.Tensor) -> torch.Tensor:
    """What the page and the report show, in [−1, 1]: the original, the mask (white = regenerate), the masked input
    (``ui.part_a.masked_view``) and the inpaintings."""
    x, m = torch.from_numpy(image).unsqueeze(0), torch.from_numpy(mask)
    return torch.cat([x, (2 * m - 1).expand_as(x), masked_view(x, m),
                      rescaled(result, backend.model.value_range, (-1.0, 1.0))])


# --- the report --------------------------------------------------------------------------------------------------------

INPAINTING = Heading(SECTION.slug, SECTION.number, SECTION.heading)


def _report(c: Context):
    flow, picked, prompt = shown_flow_input(c)
    g = DEFAULTS
    mask = preset_masks(flow)[g.mask].numpy()
    result, _ = inpaintings(flow.cache_id, picked.array, mask, prompt, flow.guidance_w, g.h, g.samples, c.seed, flow,
                            c.progress)
    picture = grid(strip(flow, picked.array, mask, result), g.samples + 3, upscale=upscale_for(flow.size))
    settings = {"image": picked.caption, "mask": g.mask, "prompt": quoted_prompt(prompt), "guidance w": flow.guidance_w,
                "h": f"{g.h:g} ({counted(euler_steps(), 'Euler step')})", "samples": g.samples, "noise seed": c.seed}
    text = (f"{SECTION.summary}. After every Euler step to t' the kept pixels are put back at (1 − t')·ε + t'·x_orig, "
            "so they end as the original's own.")
    figure = png_figure(picture, "original · mask · masked input · inpaintings")
    return [INPAINTING.made(settings, [figure], text)], None


def _units(_: Context) -> int:
    return euler_steps()


REPORT = (Piece((INPAINTING,), SECTION.label, _units, _report),)

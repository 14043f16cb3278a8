"""Sections 1.6 and 2.1 of the flow edition · generating from pure noise: Euler from t = 0 with h = 0.02 (50 steps),
first without guidance (1.6), then with classifier-free guidance in the course's form v_c + w(v_c − v_u) from the very
same noises (2.1). On the MNIST flow model a prompt is a digit."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.flow.euler import euler_step_count, sample, scale_from_course_w
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.common import counted
from ui.flow_backend import STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, shown_flow_backend, upscale_for


@dataclass(frozen=True, kw_only=True)
class Defaults:
    samples: int = 5  # the course's five samples
    h: float = STEP  # 50 Euler steps from t = 0; guidance: the model's own (``FlowBackend.guidance_w``)


DEFAULTS = Defaults()


def sampling_steps() -> int:
    """The Euler steps of one sampling run at ``DEFAULTS.h`` (the page and the report run two: w = 0 and guided)."""
    return euler_step_count(0.0, DEFAULTS.h)


@st.cache_data(show_spinner=False, max_entries=32)  # its callers show a progress bar
def samples(cache_id: str, prompt: str, num: int, h: float, w: float, seed: int,
            _backend: FlowBackend, _on_step=None) -> torch.Tensor:
    """``num`` images integrated from x_0 ~ N(0, I) of a generator seeded with ``seed`` — the same noises for every w —
    with guidance w in the course's form (w = 0: the conditional velocity alone), by the weights ``cache_id`` names;
    (num, C, H, W) in the model's pixel range. ``_on_step`` follows the Euler steps (a page's progress bar)."""
    model = _backend.model
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return sample(model, model.encode_prompt(prompt), scale=scale_from_course_w(w), num_samples=num,
                  generator=generator, h=h, on_step=_on_step).float().cpu()


# --- the report --------------------------------------------------------------------------------------------------------

PLAIN = Heading("flow_sampling.plain", "1.6", "Generating from noise")
GUIDED = Heading("flow_sampling", "2.1", "Classifier-free guidance from the same noises")


def _report(c: Context):
    flow = shown_flow_backend(c)
    g, prompt = DEFAULTS, flow.defaults.prompt
    steps = sampling_steps()
    settings = {"prompt": quoted_prompt(prompt), "samples": g.samples, "h": f"{g.h:g} ({counted(steps, 'Euler step')})",
                "seed": c.seed}
    made = []
    for heading, w in ((PLAIN, 0.0), (GUIDED, flow.guidance_w)):
        images = samples(flow.cache_id, prompt, g.samples, g.h, w, c.seed, flow, c.progress)
        picture = grid(images, g.samples, flow.model.value_range, upscale=upscale_for(flow.size))
        made.append(heading.made({**settings, "guidance w": w}, [png_figure(picture, f"w = {w:g}")]))
    made[1].text = (f"v_c + w (v_c − v_u) with this model's w = {flow.guidance_w:g} (part B's γ = "
                    f"{scale_from_course_w(flow.guidance_w):g}), "
                    "from the noises of 1.6.")
    return made, None


REPORT = (Piece((PLAIN, GUIDED), "1.6, 2.1 · sampling and CFG", lambda c: 2 * sampling_steps(), _report),)

"""Section 3.3 of the flow edition · visual anagrams: one image that reads as prompt 1 as it is and as prompt 2 under
a view — the course's 180° rotation, or any other of the app's views — by averaging the guided velocity of the image
with the view's velocity mapped back, v = (v₁ + view⁻¹(CFG(view(x_t), p₂))) / 2, at every Euler step
(``lib.techniques.anagrams.anagram_velocity``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler, scale_from_course_w
from lib.techniques.anagrams import anagram_velocity
from lib.techniques.views import VIEWS
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.flow_backend import STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, euler_steps_at, shown_flow_backend, upscale_for

# the views a flow anagram can use: all of the app's but the identity (the upright reading) and the negation, which
# maps the flow model's pixels in [0, 1] out of their range (it suits the DDPM's [−1, 1])
FLOW_VIEWS = tuple(name for name in VIEWS if name not in ("identity", "negate (MNIST)"))


@dataclass(frozen=True, kw_only=True)
class Defaults:
    prompt1: str  # as generated
    prompt2: str  # under the view
    view: str = "rotate 180°"  # the course's flip
    samples: int = 4
    h: float = STEP  # guidance: the model's own (``FlowBackend.guidance_w``)


DEFAULTS = {  # per family: the MNIST pair measured to work both ways (bench/flow_lessons.py), the course's first pair
    "mnist": Defaults(prompt1="6", prompt2="9"),
    "pixnerd": Defaults(prompt1="an oil painting of an old man", prompt2="an oil painting of people around a campfire"),
}


@st.cache_data(show_spinner=False, max_entries=32)  # its callers show a progress bar
def anagrams(cache_id: str, prompt1: str, prompt2: str, view: str, w: float, h: float, num: int, seed: int,
             _backend: FlowBackend, _on_step=None) -> torch.Tensor:
    """``num`` anagrams from x_0 ~ N(0, I) of a generator seeded with ``seed``, with the weights ``cache_id``
    names; (num, C, H, W) in the model's pixel range, upright (prompt 1's reading). ``_on_step``: a progress bar."""
    model = _backend.model
    generator = torch.Generator().manual_seed(seed)
    x0 = randn((num, *model.image_shape), generator, device=model.device, dtype=model.dtype)
    predict = anagram_velocity(model, [model.encode_prompt(prompt1), model.encode_prompt(prompt2)],
                               [VIEWS["identity"], VIEWS[view]], (0.5, 0.5), scale_from_course_w(w))
    return euler(x0, 0.0, h, predict, on_step=_on_step).float().cpu()


# --- the report --------------------------------------------------------------------------------------------------------

ANAGRAMS = Heading("flow_anagrams", "3.3", "Visual anagrams")


def _report(c: Context):
    flow = shown_flow_backend(c)
    g, w = DEFAULTS[flow.family], flow.guidance_w
    images = anagrams(flow.cache_id, g.prompt1, g.prompt2, g.view, w, g.h, g.samples, c.seed, flow, c.progress)
    picture = grid(torch.cat([images, VIEWS[g.view].apply(images)]), g.samples, flow.model.value_range,
                   upscale=upscale_for(flow.size))
    settings = {"prompt 1 (as it is)": quoted_prompt(g.prompt1), "prompt 2 (under the view)": quoted_prompt(g.prompt2),
                "view": g.view, "guidance w": w, "h": g.h, "samples": g.samples, "seed": c.seed}
    caption = f"top: as generated, {quoted_prompt(g.prompt1)}; bottom: under the view, {quoted_prompt(g.prompt2)}"
    return [ANAGRAMS.made(settings, [png_figure(picture, caption)])], None


REPORT = (Piece((ANAGRAMS,), "3.3 · visual anagrams", euler_steps_at(DEFAULTS), _report),)

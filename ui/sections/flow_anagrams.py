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
from ui.flow_backend import GUIDANCE_W, STEP, FlowBackend

# the views a flow anagram can use: all of the app's but the identity (the upright reading) and the negation, which
# maps the flow model's pixels in [0, 1] out of their range (it suits the DDPM's [−1, 1])
FLOW_VIEWS = tuple(name for name in VIEWS if name not in ("identity", "negate (MNIST)"))


@dataclass(frozen=True, kw_only=True)
class Defaults:
    prompt1: str = "6"  # as generated
    prompt2: str = "9"  # under the view
    view: str = "rotate 180°"  # the course's flip
    samples: int = 4
    h: float = STEP
    w: float = GUIDANCE_W


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling anagrams…", max_entries=32)
def anagrams(cache_id: str, prompt1: str, prompt2: str, view: str, w: float, h: float, num: int, seed: int,
             _backend: FlowBackend) -> torch.Tensor:
    """``num`` anagrams from x_0 ~ N(0, I) of a generator seeded with ``seed``, with the weights ``cache_id``
    names; (num, C, H, W) in the model's pixel range, upright (prompt 1's reading)."""
    model = _backend.model
    generator = torch.Generator().manual_seed(seed)
    x0 = randn((num, *model.image_shape), generator, device=model.device, dtype=model.dtype)
    predict = anagram_velocity(model, [model.encode_prompt(prompt1), model.encode_prompt(prompt2)],
                               [VIEWS["identity"], VIEWS[view]], (0.5, 0.5), scale_from_course_w(w))
    return euler(x0, 0.0, h, predict).float().cpu()


REPORT = ()  # the flow edition's part of the whole-assignment report comes with the report's edition choice

"""Sections 3.1 – 3.2 of the flow edition · image-to-image editing: start part of the way along the straight path,
x_start = (1 − t_s)·ε + t_s·x₁, and integrate the guided velocity from t_s to 1 (``lib.techniques.sdedit.flow_edit``);
at the course's seven start times, all from one ε. A larger t_s keeps more of the image. 3.2 is the same with a prompt
that asks for something else (on the MNIST flow model, another digit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler_step_count, scale_from_course_w
from lib.techniques.sdedit import flow_edit
from lib.media.images import grid
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.flow_backend import STEP, FlowBackend
from ui.report_kit import Context, Heading, Piece, shown_flow_backend, shown_flow_input, upscale_for


@dataclass(frozen=True, kw_only=True)
class Defaults:
    t_starts: tuple[float, ...] = (0.02, 0.04, 0.06, 0.10, 0.14, 0.25, 0.50)  # the course's seven
    h: float = STEP  # guidance: the model's own (``FlowBackend.guidance_w``)
    text_edit: str  # 3.2: the edit of the input towards another prompt


DEFAULTS = {"mnist": Defaults(text_edit="2"),  # the test digit 3 edited towards a 2
            "pixnerd": Defaults(text_edit="a photograph of a rocket on a launch pad")}  # the course's example


@st.cache_data(show_spinner=False, max_entries=32)  # its callers show a progress bar
def edits(cache_id: str, image: np.ndarray, t_starts: tuple[float, ...], prompt: str, w: float, h: float, seed: int,
          _backend: FlowBackend, _on_step=None) -> torch.Tensor:
    """The edit from every start time (one ε ~ N(0, I) from ``seed`` for all), guided by ``prompt`` with w in the
    course's form, by the weights ``cache_id`` names; (len(t_starts), C, H, W) in the model's pixel range.
    ``_on_step``: a progress bar over every run's steps."""
    model = _backend.model
    x1 = _backend.image(image).to(model.device)
    eps = randn(x1.shape, torch.Generator().manual_seed(seed), like=x1)
    return flow_edit(model, x1, eps, cond=model.encode_prompt(prompt), scale=scale_from_course_w(w), t_starts=t_starts,
                     h=h, on_step=_on_step).float().cpu()


# --- the report --------------------------------------------------------------------------------------------------------

EDIT = Heading("flow_editing", "3.1", "Image-to-image editing from seven start times")
TEXT_EDIT = Heading("flow_editing.text", "3.2", "Text-guided editing")


def _report(c: Context):
    flow, picked, own_prompt = shown_flow_input(c)
    g, w, x1 = DEFAULTS[flow.family], flow.guidance_w, flow.image(picked.array)
    made = []
    for heading, prompt, text in ((EDIT, own_prompt, "A larger t_s keeps more of the "
                                   "input."),
                                  (TEXT_EDIT, g.text_edit, f"The same edits steered towards {quoted_prompt(g.text_edit)}.")):
        edited = edits(flow.cache_id, picked.array, g.t_starts, prompt, w, g.h, c.seed, flow, c.progress)
        picture = grid(torch.cat([x1, edited]), 1 + len(edited), flow.model.value_range, upscale=upscale_for(flow.size))
        settings = {"image": picked.caption, "prompt": quoted_prompt(prompt), "t_s": ", ".join(f"{t:g}" for t in g.t_starts),
                    "guidance w": w, "h": g.h, "noise seed": c.seed}
        made.append(heading.made(settings, [png_figure(picture, "input · t_s = " + ", ".join(f"{t:g}" for t in
                                                                                             g.t_starts))], text))
    return made, None


def edit_steps(t_starts: tuple[float, ...], h: float) -> int:
    """The Euler steps of one ``edits`` call: each start time's run from t_s to 1."""
    return sum(euler_step_count(t_s, h) for t_s in t_starts)


def _units(c: Context) -> int:
    g = DEFAULTS[shown_flow_backend(c).family]
    return 2 * edit_steps(g.t_starts, g.h)  # 3.1 and 3.2


REPORT = (Piece((EDIT, TEXT_EDIT), "3.1 – 3.2 · image-to-image editing", _units, _report),)

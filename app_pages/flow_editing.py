"""Flow edition A 3.1 – 3.2 · image-to-image editing from seven start times, and text-guided editing."""

import streamlit as st
import torch

from lib.media.images import grid
from ui.backend import StepProgress, prompt_ok, seed_control
from ui.layout import download_png
from ui.common import counted
from ui.flow_backend import flow_image_page, guidance_w_slider
from ui.part_a import edit_prompt_input, show
from ui.report_kit import upscale_for
from ui.sections.flow_editing import DEFAULTS, edit_steps, edits

backend, picked, right = flow_image_page(
    "flow_editing",
    [r"x_{t_s} = (1 - t_s)\,\varepsilon + t_s\,x_1,\qquad \text{then } x_{t+h} = x_t + h\,v_\text{cfg}(x_t, t, c)"
     r"\ \text{ from } t_s \text{ to } 1",
     r"t_s \in \{0.02,\ 0.04,\ 0.06,\ 0.10,\ 0.14,\ 0.25,\ 0.50\}"],
    "Editing is sampling that does not start from pure noise: put the image part of the way along its straight "
    "path — at time t_s, mostly noise for a small t_s — and let the model integrate the rest. The model must invent "
    "what the noise hides, so the result is an image it believes in that keeps the input's rough layout. **A larger "
    "t_s keeps more of the input.** Any image works: a test digit, your own upload or a web image (3.1), a drawing "
    "(3.1, hand-drawn), and with a prompt asking for something else it becomes text-guided editing (3.2).",
)
value_range = backend.model.value_range
d = DEFAULTS[backend.family]

with right:
    steer = (("the input's own digit", "type another digit") if backend.family == "mnist" else
             ("the course's prompt", f"type what it should become (the course's: {d.text_edit!r})"))
    prompt = edit_prompt_input(backend, picked, "flow_editing",
                               f"3.1: {steer[0]}; 3.2: {steer[1]} to steer the edit towards it.")
    c1, c2 = st.columns(2)
    w = guidance_w_slider(backend, "flow_editing_w", container=c1, help="v_c + w (v_c − v_u); 0 = no guidance.")
    with c2:
        seed = seed_control("flow_editing_seed").value
if picked is None:
    st.stop()
if not prompt_ok(backend, prompt):
    st.stop()

steps = edit_steps(d.t_starts, d.h)
progress = StepProgress(steps, "Editing from the seven start times:")
edited = edits(backend.cache_id, picked.array, d.t_starts, prompt, w, d.h, seed, backend, progress)
progress.done()
show(backend.image(picked.array), value_range=value_range, target_px=120, caption=f"input ({picked.caption})")
show(edited, value_range=value_range, target_px=110,
     caption=" · ".join(f"t_s = {t_s:g}" for t_s in d.t_starts))
what = f"the prompt {prompt!r}" if prompt else "the empty prompt (unconditional)"
st.caption(f"Guided by {what}, w = {w:g}, h = {d.h:g}: {counted(steps, 'Euler step')} for the seven edits, "
           f"all from the same noise (seed {seed}).")
download_png(grid(torch.cat([backend.image(picked.array), edited]), 1 + len(edited), value_range, upscale=upscale_for(backend.size)),
             f"flow_editing_seed{seed}.png")

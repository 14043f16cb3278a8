"""Flow edition A 3.3 · visual anagrams: one image, two prompts, two views."""

import streamlit as st
import torch

from lib.flow.euler import euler_step_count
from lib.media.images import grid
from lib.techniques.views import VIEWS
from ui.backend import StepProgress, prompt_ok, seed_control
from ui.layout import download_png
from ui.flow_backend import flow_page_setup, guidance_w_slider, prompt_help
from ui.part_a import prompt_input, show
from ui.report_kit import upscale_for
from ui.sections.flow_anagrams import DEFAULTS, FLOW_VIEWS, anagrams

backend = flow_page_setup(
    "flow_anagrams",
    [r"v_1 = v_\text{cfg}(x_t, t, p_1),\qquad v_2 = \text{view}^{-1}\big(v_\text{cfg}(\text{view}(x_t), t, p_2)\big),"
     r"\qquad v = \tfrac{1}{2}(v_1 + v_2)",
     r"x_{t+h} = x_t + h\,v,\qquad \text{view} = \text{rotation by } 180° \text{ (the course's)}"],
    "At every step the model is asked twice: what velocity makes the image look like prompt 1, and — looking at the "
    "image turned by the view — what makes *that* look like prompt 2; the second answer is turned back, and the step "
    "follows their average. The finished image answers both. The view must move pixels without changing their "
    "statistics (a permutation such as a rotation), or the model sees something unlike anything it was trained on.",
)
value_range = backend.model.value_range

d = DEFAULTS[backend.family]
c1, c2, c3 = st.columns(3)
prompt1 = prompt_input("Prompt 1 (as it is)", d.prompt1, "flow_anagrams_p1", backend.family,
                       help=prompt_help(backend), container=c1)
prompt2 = prompt_input("Prompt 2 (under the view)", d.prompt2, "flow_anagrams_p2", backend.family,
                       help=prompt_help(backend), container=c2)
view = c3.selectbox("View", FLOW_VIEWS, FLOW_VIEWS.index(d.view), key="flow_anagrams_view")
d1, d2, d3 = st.columns(3)
num = d1.slider("Samples", 1, 8, d.samples, key="flow_anagrams_samples")
w = guidance_w_slider(backend, "flow_anagrams_w", container=d2, help="v_c + w (v_c − v_u) per view.")
with d3:
    seed = seed_control("flow_anagrams_seed").value
if not (prompt_ok(backend, prompt1, field="Prompt 1") and prompt_ok(backend, prompt2, field="Prompt 2")):
    st.stop()

progress = StepProgress(euler_step_count(0.0, d.h), "Sampling anagrams:")
images = anagrams(backend.cache_id, prompt1, prompt2, view, w, d.h, num, seed, backend, progress)
progress.done()
viewed = VIEWS[view].apply(images)
show(images, value_range=value_range, target_px=130, caption=f"as generated: {prompt1!r}")
show(viewed, value_range=value_range, target_px=130, caption=f"under the view “{view}”: {prompt2!r}")
st.caption(f"Every Euler step (h = {d.h:g}) is one batched call on both views, each with its conditional and "
           f"unconditional rows; seed {seed}.")
download_png(grid(torch.cat([images, viewed]), num, value_range, upscale=upscale_for(backend.size)), f"flow_anagram_{prompt1}_{prompt2}.png")

"""B 2.4 – 2.6 (flow edition) · the class-conditioned flow-matching UNet: the UNet also sees the digit (one-hot);
sampling integrates the classifier-free-guided velocity."""

import streamlit as st

from lib.flow.mnist import GUIDANCE_SCALE
from ui import layout
from ui.backend import seed_control
from ui.common import counted, flow_of, run_cache_id
from ui.layout import section_header
from ui.sections import time_flow
from ui.sections.class_flow import DEFAULTS, digit_trajectory
from ui.sidebar import render_sidebar
from ui.training.flow_page import draw_grid, euler_steps_control, flow_sections, frame_every, frames_control
from ui.training.results import FLOW_FRAMES, trajectory_view
from ui.weights import weights_control

section_header(
    "class_flow",
    [r"\text{unflatten} \leftarrow c_1(\mathbf{c}) \odot \text{unflatten} + t_1(t),\qquad "
         r"\text{up}_1 \leftarrow c_2(\mathbf{c}) \odot \text{up}_1 + t_2(t)",
     r"\mathbf{c} = \text{one-hot(digit)}\ \text{or}\ \mathbf{0}\ \text{with prob. } p_\text{uncond} = 0.1,\qquad "
         r"\mathcal{L} = \mathbb{E}\,\big\lVert (x_1 - x_0) - u_\theta(x_t, t, \mathbf{c}) \big\rVert^2",
     r"\hat v = u_\theta(x_t, t, \varnothing) + \gamma\,\big(u_\theta(x_t, t, \mathbf{c}) - "
         r"u_\theta(x_t, t, \varnothing)\big),\qquad x_{t+h} = x_t + h\,\hat v"],
    "The flow of B 2.1 – 2.3, also told which digit it is looking at: the one-hot class vector c scales two feature "
    "maps of the UNet and the time shifts them. One time in ten the class is hidden (all zeros), so the same network "
    "also learns the unconditional velocity u(∅). Sampling runs both and extrapolates from the unconditional towards "
    "the conditional velocity by the guidance scale γ — v_u + γ(v_c − v_u), the spec's γ = 5 (part A's course form "
    "v_c + w(v_c − v_u) is the same with γ = w + 1): γ = 0 ignores the digit, γ = 1 is plain conditioning. The spec "
    "integrates it in 300 Euler steps from t = 0 (noise) to t = 1 (the digit).",
)
render_sidebar()

run = flow_sections("flow_class", key="class_flow", what="class-conditioned flow model",
                    path_times=time_flow.DEFAULTS.path_times,
                    snapshot_caption=f"4 samples of every digit (γ = {GUIDANCE_SCALE:g}), one row per digit,")

st.header("4 · Sampling with guidance")
weights = weights_control(run, "class_flow")
c1, c2, c3 = st.columns(3)
scale = c1.slider("Guidance scale γ", 0.0, 10.0, DEFAULTS.scale, 0.5, key="class_flow_scale",
                  help="0 = unconditional, 1 = conditional, > 1 = classifier-free guidance (the spec uses 5).")
steps = euler_steps_control("class_flow_steps", DEFAULTS.steps, DEFAULTS.steps_slow_cpu, container=c2)
with c3:
    seed = seed_control("class_flow_seed").value
model = flow_of(run, weights)


def steps_caption(batch: str) -> None:
    st.caption(f"{counted(steps, 'Euler step')} of h = 1/{steps}, each one batched UNet call for the conditional and "
               f"the unconditional velocity of {batch} (the spec's {DEFAULTS.steps}).")


st.subheader("All ten digits")
steps_caption("40 digits")
picture = draw_grid(model, run_cache_id(run, weights), steps, seed, scale)
layout.image(picture, f"Rows: digits 0–9, 4 samples each · γ = {scale:g}, {counted(steps, 'Euler step')}, seed {seed}")
layout.download_png(picture, f"flow_class_g{scale:g}_{steps}steps_seed{seed}.png", key="class_flow_grid_png")

st.subheader("Watch a digit being generated")
d1, d2, d3 = st.columns(3)
digit = d1.selectbox("Digit", range(10), DEFAULTS.digit, key="class_flow_digit")
num = d2.slider("Samples", 1, 8, DEFAULTS.samples, key="class_flow_samples")
frames = frames_control("class_flow_frames", DEFAULTS.frames, container=d3)
steps_caption(f"{num} digits")
recorder = digit_trajectory(run_cache_id(run, weights), digit, num, scale, steps, frame_every(steps, frames), seed, model)
trajectory_view(recorder, key="class_flow", filename=f"flow_class_digit{digit}_g{scale:g}_{steps}steps_seed{seed}.gif",
                names=FLOW_FRAMES)

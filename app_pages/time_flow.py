"""B 2.1 – 2.3 (flow edition) · the time-conditioned flow-matching UNet: told t, it predicts the velocity of the straight
path from noise to a digit; sampling integrates it with Euler steps from t = 0 to 1."""

import streamlit as st

from lib.train import model_store
from ui import layout
from ui.backend import seed_control
from ui.common import flow_of, run_cache_id
from ui.layout import section_header
from ui.sections.time_flow import DEFAULTS, judged_samplers, sampler_words, trajectory
from ui.sidebar import render_sidebar
from ui.training.better_unet import comparison, described, unet_choice
from ui.training.flow_page import (ANCESTRAL_STEP, draw_grid, euler_steps_control, flow_sections, frame_every,
                                  frames_control, noise_control)
from ui.training.results import FLOW_FRAMES, trajectory_view
from ui.weights import weights_control

section_header(
    "time_flow",
    [r"x_t = (1 - t)\,x_0 + t\,x_1,\qquad x_0 \sim \mathcal{N}(0, I),\qquad t \sim \mathcal{U}[0, 1]",
     r"\mathcal{L} = \mathbb{E}_{x_0, x_1, t}\,\big\lVert (x_1 - x_0) - u_\theta(x_t, t) \big\rVert^2",
     r"\text{unflatten} \leftarrow \text{unflatten} \odot \mathrm{fc}_1(t),\qquad "
         r"\text{up}_1 \leftarrow \text{up}_1 \odot \mathrm{fc}_2(t)",
     r"x_{t+h} = x_t + h\,u_\theta(x_t, t),\qquad h = 1/N,\quad t = 0, h, 2h, \dots, 1"],
    "Flow matching draws a straight line from a noise image x₀ (t = 0) to a digit x₁ (t = 1, pixels in [0, 1]) and "
    "trains the UNet, told the time t, to predict the velocity x₁ − x₀ of that line at the point x_t — the same "
    "target all along it. t runs the other way from the DDPM's index: **t = 0 is pure noise, t = 1 the image**. The "
    "time enters multiplicatively: two small fully connected blocks of t scale the bottleneck and the first "
    "up-sampled feature maps. To generate, start from fresh noise at t = 0 and follow the predicted velocity with N "
    "Euler steps of size h = 1/N (the spec's N = 50) to t = 1. No noise is added on the way: the path is "
    "deterministic given x₀.",
)
render_sidebar()

name = unet_choice("flow_time", key="time_flow")
run = flow_sections(name, key="time_flow", what=described(name, "time-conditioned flow model"),
                    path_times=DEFAULTS.path_times, snapshot_caption="40 samples")

st.header("4 · Sampling with Euler (or ancestral) steps")
weights = weights_control(run, "time_flow")
c1, c2, c3 = st.columns(3)
steps = euler_steps_control("time_flow_steps", DEFAULTS.steps, container=c1)
eta = noise_control(f"time_flow_eta_{name}", model_store.sampler_eta(name), container=c2)
with c3:
    seed = seed_control("time_flow_seed").value
model = flow_of(run, weights)
drawn_with = sampler_words(steps, eta)
st.caption(f"{drawn_with} of h = 1/{steps} from t = 0 to 1, each one UNet call for the batch (the spec's "
           f"{DEFAULTS.steps} Euler steps). The same seed gives the same starting noise at every step count.")
if eta:
    for formula in ANCESTRAL_STEP:
        st.latex(formula)
    st.caption("The ancestral step: predict the digit x̂₁ and the noise ε̂ the line through x_t came from, then place "
               "the next state on the path at t′, keeping part of ε̂ and drawing the rest afresh (s). With η = 0 "
               "nothing is drawn and this is Euler's step; with η = 1 it is the DDPM's posterior step, whose fresh "
               "noise lets later steps correct what earlier ones got wrong.")
picture = draw_grid(model, run_cache_id(run, weights), steps, seed, eta=eta)
layout.image(picture, f"40 samples · {drawn_with}, seed {seed}")
tag = f"{steps}steps" + (f"_eta{eta:g}" if eta else "")
layout.download_png(picture, f"flow_time_{tag}_seed{seed}.png", key="time_flow_grid_png")

st.subheader("Watch samples being integrated")
d1, d2 = st.columns(2)
num = d1.slider("Samples", 1, 8, DEFAULTS.samples, key="time_flow_samples",
                help="The first samples of the grid above: the same starting noise.")
frames = frames_control("time_flow_frames", DEFAULTS.frames, container=d2)
recorder = trajectory(run_cache_id(run, weights), num, steps, frame_every(steps, frames), seed, eta, model)
trajectory_view(recorder, key="time_flow", filename=f"flow_time_{tag}_seed{seed}.gif", names=FLOW_FRAMES)

comparison("flow_time", key="time_flow", samplers=judged_samplers())

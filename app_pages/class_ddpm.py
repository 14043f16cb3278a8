"""B3 · the class-conditioned DDPM: the UNet also sees the digit (one-hot); sampling uses classifier-free guidance."""

import streamlit as st

from ui import layout
from ui.backend import StepProgress, seed_control
from ui.common import counted, ddpm_of, run_cache_id
from ui.sections.class_ddpm import DEFAULTS, digit_trajectory
from ui.layout import section_header
from ui.sidebar import render_sidebar
from ui.training.ddpm_page import ddpm_sections
from ui.training.results import GRID_STRIDE, mnist_stride_control, trajectory_view
from ui.weights import SAMPLED_WITH, ema_comparison, grid_picture, weights_control, weights_tag

section_header(
    "class_ddpm",
    [r"\text{unflatten} \leftarrow c_1(\mathbf{c}) \odot \text{unflatten} + t_1(t/T),\qquad "
         r"\text{up}_1 \leftarrow c_2(\mathbf{c}) \odot \text{up}_1 + t_2(t/T)",
     r"\mathbf{c} = \text{one-hot(digit)}\ \text{or}\ \mathbf{0}\ \text{with prob. } p_\text{uncond} = 0.1",
     r"\hat\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + "
         r"\gamma\,\big(\varepsilon_\theta(x_t, t, \mathbf{c}) - \varepsilon_\theta(x_t, t, \varnothing)\big)"],
    "The DDPM of B2, also told which digit it is looking at: the one-hot class vector scales two feature maps of the "
    "UNet. One time in ten the class is hidden (all zeros), so the same network also learns the unconditional noise "
    "ε(∅). Sampling runs both and extrapolates from the unconditional towards the conditional prediction by the "
    "guidance scale γ: γ = 0 ignores the digit, γ = 1 is plain conditioning, larger γ (the spec uses 5) gives cleaner, "
    "more typical — but less varied — digits. Everything else (schedule, loss, sampler) is B2's.",
)
render_sidebar()

run = ddpm_sections(
    "class", key="class_ddpm",
    schedule_caption=lambda shown: (
        f"The linear schedule of B2: T = {shown.num_timesteps}, β from {shown.beta_start:g} to {shown.beta_end:g}."),
    snapshot_caption="4 samples of every digit (γ = 5), one row per digit,",
)

ema_comparison(run, key="class_ddpm")

st.header("4 · Sampling with guidance")
weights = weights_control(run, "class_ddpm")
c1, c2 = st.columns(2)
scale = c1.slider("Guidance scale γ", 0.0, 10.0, DEFAULTS.scale, 0.5, key="class_ddpm_scale",
                  help="0 = unconditional, 1 = conditional, > 1 = classifier-free guidance (the spec uses 5).")
with c2:
    seed = seed_control("class_ddpm_seed").value
den = ddpm_of(run, weights)


def steps_caption(stride: int, batch: str) -> None:
    st.caption(f"Stride {stride}: {counted(len(den.timesteps(stride)) - 1, 'denoising step')} with "
               f"{SAMPLED_WITH[weights]}, each one batched UNet call for the conditional and the unconditional "
               f"prediction of {batch} (stride 1 is the spec's full 300-step DDPM).")


st.subheader("All ten digits")
grid_stride = mnist_stride_control("class_ddpm_grid", GRID_STRIDE)
steps_caption(grid_stride, "40 digits")
progress = StepProgress(len(den.timesteps(grid_stride)) - 1, "Sampling 40 digits…")
picture = grid_picture(run_cache_id(run, weights), grid_stride, seed, scale, den, progress)
progress.done()
layout.image(picture, f"Rows: digits 0–9, 4 samples each · γ = {scale:g}, stride {grid_stride}, seed {seed} · "
                      f"{SAMPLED_WITH[weights]}")
layout.download_png(picture, f"b3_digits_{weights_tag(weights)}_g{scale:g}_s{grid_stride}_seed{seed}.png",
                    key="class_ddpm_grid_png")

st.subheader("Watch a digit being denoised")
d1, d2, d3, d4 = st.columns(4)
digit = d1.selectbox("Digit", range(10), DEFAULTS.digit, key="class_ddpm_digit")
num = d2.slider("Samples", 1, 8, DEFAULTS.samples, key="class_ddpm_samples")
every = d3.slider("Frame every k steps", 1, 10, DEFAULTS.every, key="class_ddpm_every")
with d4:
    stride = mnist_stride_control("class_ddpm")
steps_caption(stride, f"{num} digits")
recorder = digit_trajectory(run_cache_id(run, weights), digit, num, scale, stride, every, seed, den)
trajectory_view(recorder, key="class_ddpm", filename=f"b3_digit{digit}_{weights_tag(weights)}_g{scale:g}_s{stride}_seed{seed}.gif")

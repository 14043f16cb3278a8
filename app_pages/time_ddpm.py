"""B2 · the time-conditioned DDPM: a UNet told the timestep t predicts the noise in x_t; sampling runs it T times."""

import streamlit as st

from ui.backend import seed_control
from ui.common import counted, ddpm_of, run_cache_id
from ui.layout import section_header
from lib.train.judged_samples import DDPM_STRIDE, sampler_calls
from ui.sections.time_ddpm import DEFAULTS, judge_samples, trajectory
from ui.sidebar import render_sidebar
from ui.training.better_unet import JudgedSampler, comparison, unet_choice
from ui.training.ddpm_page import ddpm_sections
from ui.training.results import mnist_stride_control, trajectory_view
from ui.weights import SAMPLED_WITH, ema_comparison, weights_control, weights_tag

section_header(
    "time_ddpm",
    [r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad "
         r"\bar\alpha_t = \prod_{s \le t} (1 - \beta_s),\qquad t \sim \mathcal{U}\{0,\dots,T-1\}",
     r"\mathcal{L} = \mathbb{E}_{x_0,\varepsilon,t}\,"
         r"\big\lVert \varepsilon_\theta(x_t, t/T) - \varepsilon \big\rVert^2",
     r"\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}},\qquad "
         r"x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,\hat x_0 + "
         r"\frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t + \sqrt{\beta_t}\,z"],
    "Instead of one fixed σ, the DDPM noises a digit (pixels in [−1, 1]) to a random timestep t of a T = 300-step "
    "schedule and trains the UNet, which is told t/T, to predict the noise ε that was added. To generate, start from "
    "pure noise x_T and apply the update above step by step: each step estimates the clean digit x̂0, moves towards it "
    "and adds back a little fresh noise z (none on the last step).",
)
render_sidebar()

run = ddpm_sections(
    unet_choice("time", key="time_ddpm"), key="time_ddpm",
    schedule_caption=lambda shown: (
        f"β_t rises linearly from {shown.beta_start:g} to {shown.beta_end:g} over T = {shown.num_timesteps}; "
        "ᾱ_t, the share of the clean signal's variance left in x_t, falls towards 0 — but x_T still holds "
        f"√ᾱ_T = {shown.schedule().terminal_signal():.0%} of "
        "the digit, while sampling starts from pure noise."),
    snapshot_caption="40 samples",
)

ema_comparison(run, key="time_ddpm")

st.subheader("Watch a sample being denoised")
weights = weights_control(run, "time_ddpm")
c1, c2, c3, c4 = st.columns(4)
with c1:
    stride = mnist_stride_control("time_ddpm")
num = c2.slider("Samples", 1, 8, DEFAULTS.samples, key="time_ddpm_samples")
every = c3.slider("Frame every k steps", 1, 10, DEFAULTS.every, key="time_ddpm_every")
with c4:
    seed = seed_control("time_ddpm_seed").value
den = ddpm_of(run, weights)
num_steps = len(den.timesteps(stride)) - 1
st.caption(f"Stride {stride}: {counted(num_steps, 'denoising step')} with {SAMPLED_WITH[weights]} (stride 1 is the "
           "spec's full 300-step DDPM).")


recorder = trajectory(run_cache_id(run, weights), num, stride, every, seed, den)
trajectory_view(recorder, key="time_ddpm", filename=f"time_ddpm_denoising_{weights_tag(weights)}_stride{stride}_seed{seed}.gif")

judge_calls = sampler_calls(den)
comparison("time", key="time_ddpm", samplers=[JudgedSampler(
    f"stride {DDPM_STRIDE} ({counted(judge_calls, 'denoising step')} of T = {run.config.num_timesteps})", judge_calls,
    judge_samples)])

"""B1 · the single-step denoising UNet: z = x + σε, trained to give back x in one forward pass."""

import streamlit as st
import torch

from lib.media.images import grid
from lib.media.plots import sweep_figure
from lib.train.runs import denoiser_probe
from ui import edition, layout
from ui.backend import seed_control
from ui.common import mnist, run_cache_id
from ui.sections.single_step import DEFAULTS, denoise_with, noising_columns, ood_sweep
from ui.layout import section_header
from ui.sidebar import render_sidebar
from ui.training.live import training_panel
from ui.training.results import loss_panel, no_model_yet, provenance_caption, run_to_show
from ui.training.settings import config_controls

section_header(
    "single_step",
    [r"z = x + \sigma\,\varepsilon,\quad \varepsilon \sim \mathcal{N}(0, I)"
         r"\qquad\qquad \mathcal{L} = \mathbb{E}_{x,\varepsilon}\,\big\lVert D_\theta(z) - x \big\rVert^2"],
    "Add Gaussian noise of strength σ to a clean MNIST digit *x* (pixels in [0, 1]) and train a UNet *D* to return "
    "the clean digit from the noisy one in **one** forward pass, by minimising the squared error. It is trained at a "
    "single noise level (σ = 0.5 in the spec); the σ sweep at the bottom shows how it copes with noise it never saw — "
    "the reason part B moves on to a model that is told *how* noisy its input is.",
)
render_sidebar()

train_set, test_set = mnist()
sigmas = DEFAULTS.sigmas[edition.current()]
if train_set.source != "mnist":
    st.warning(train_set.note)

noising = st.container()
st.header("2 · Training")
config, valid = config_controls("denoiser", train_set)
training_panel(config, key="single_step", log_y=st.session_state.get("single_step_log", True), ready=valid)
run, note = run_to_show("denoiser", config)


with noising:
    st.header("1 · Noising digits")
    with st.columns(4)[0]:
        seed = seed_control("single_step_noise_seed").value  # part A's control and default: the same seed, the same ε at every σ
    for col, s, picture in zip(layout.columns(len(sigmas)), sigmas, noising_columns(test_set, seed, sigmas)):
        layout.image(picture, f"σ = {s:g}", col)
    st.caption("Columns: the same test digits and the same ε at growing σ (values outside [0, 1] are clipped for "
               "display).")

    st.subheader("One digit, any σ")
    c1, c2 = st.columns([1, 2])
    digit = c1.selectbox("Test digit", range(10), DEFAULTS.digit, key="single_step_digit")
    sigma = c1.slider("σ", 0.0, 1.5, DEFAULTS.sigma, 0.05, key="single_step_sigma")
    clean, noisy = denoiser_probe(test_set, sigma, seed, range(10))  # the first test digit of each class
    row = [clean[digit : digit + 1], noisy[digit : digit + 1]]
    caption = "clean x · noisy z = x + σε"
    if run is not None:
        row.append(denoise_with(run, noisy[digit : digit + 1]))
        caption += f" · D(z), the denoiser trained at σ = {run.config.sigma:g}"
    layout.image(grid(torch.cat(row), len(row), (0.0, 1.0), upscale=6), caption, c2)

st.header("3 · Results")
if run is None:
    no_model_yet("single-step denoiser", "denoiser")
provenance_caption(run, note)
loss_panel(run, key="single_step", log_default=True)

st.subheader("Denoised test digits")
first, last = min(run.snapshots), max(run.snapshots)
for col, epoch in zip(layout.columns(2), (first, last)):
    layout.image(grid(run.snapshots[epoch], 8, upscale=3),
                 f"After epoch {epoch}: clean (top), noisy σ = {run.config.sigma:g} (middle), denoised (bottom)", col)


st.subheader("Out-of-distribution σ sweep")
st.markdown(f"The model trained at σ = {run.config.sigma:g} applied to the digits above at every σ of the spec "
            "(noise seed from section 1). A well-trained model cleans up noise up to about its training σ; far "
            "above it, it leaves noise behind or invents strokes — compare the rows and the error curve.")
noisy_rows, out_rows, errors, sweep_png = ood_sweep(run_cache_id(run), seed, sigmas, run, test_set)
head = st.columns([1, 4, 4])
head[1].markdown("**noisy z**")
head[2].markdown("**denoised D(z)**")
for s, noisy_row, out_row, err in zip(sigmas, noisy_rows, out_rows, errors):
    c0, c1, c2 = st.columns([1, 4, 4])
    c0.markdown(f"σ = {s:g}  \nMSE {err:.4f}")
    layout.image(noisy_row, container=c1)
    layout.image(out_row, container=c2)
st.plotly_chart(sweep_figure(sigmas, errors, run.config.sigma), key="single_step_sweep")
layout.download_png(sweep_png, "b1_sigma_sweep.png", "Download the sweep (PNG)", key="single_step_sweep_png")

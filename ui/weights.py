"""The spec's weights of a B2/B3 run beside their exponential moving average (``lib.train.ema``): a comparison of the two on
the same noise, and the choice of which weights the page's other samplers use (the spec's by default)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lib.train.ema import EMA_DECAY, relative_distance
from lib.backends.mnist_model import GUIDANCE_SCALE, MnistDDPM, sample_grid
from lib.train.training import TrainedRun
from ui import layout
from ui.backend import StepProgress, seed_control
from ui.common import counted, ddpm_of, run_cache_id
from ui.training.results import GRID_STRIDE, grid_of, mnist_stride_control

WEIGHTS = {"spec": "The spec's weights", "ema": "Their EMA"}
SAMPLED_WITH = {"spec": "the spec's weights", "ema": "the EMA of the weights"}  # in a caption: "… · <this>"


def weights_tag(weights: str) -> str:
    """"ema_weights": which weights made a picture, in its download's file name."""
    return f"{weights}_weights"
NO_EMA = ("This run keeps no average of its weights: it was trained before runs kept one. A run trained now keeps "
          "both, as the shipped models do.")


def weights_control(run: TrainedRun, key: str) -> str:
    """Which weights the page's samplers use: "spec" (default) or "ema" (only offered when the run has them)."""
    if run.ema is None:
        return "spec"
    return st.radio("Sample with", list(WEIGHTS), format_func=WEIGHTS.get, horizontal=True, key=f"{key}_weights",
                    help="The spec's weights are the last optimiser step's; their EMA averages the last ≈ 1,000 "
                         "steps (compared above).")


@st.cache_data(show_spinner=False)
def grid_picture(key: str, stride: int, seed: int, scale: float, _den: MnistDDPM, _progress: StepProgress) -> np.ndarray:
    """The grid of 40 (``lib.backends.mnist_model.sample_grid``: guidance ``scale`` for the class model) drawn by the weights
    ``key`` names, as a picture."""
    return grid_of(sample_grid(_den, stride, seed, scale, _progress), _den.config.model)


def ema_comparison(run: TrainedRun, *, key: str) -> None:
    """The run's grid of 40 drawn twice from the same noise — with the spec's weights and with their EMA."""
    st.subheader("The spec's weights vs their moving average")
    layout.show_formula(r"\theta_\text{EMA} \leftarrow d_k\,\theta_\text{EMA} + (1 - d_k)\,\theta,\qquad "
                        rf"d_k = \min\!\left({EMA_DECAY:g},\ \tfrac{{1 + k}}{{10 + k}}\right)")
    st.markdown(
        "The spec samples with the weights of the last optimiser step. Training also kept an exponential moving "
        "average of them (after each step k), which the optimiser never sees: it smooths out the step-to-step noise "
        f"of Adam, and with d = {EMA_DECAY:g} it spans about the last 1,000 steps. Standard DDPM practice samples "
        "with the average. Both grids below start from the same noise, so every difference is the weights'.")
    if run.ema is None:
        st.info(NO_EMA)
        return
    st.markdown(
        f"Here the two sit **{relative_distance(run.ema, run.model):.1%}** apart (‖θ_EMA − θ‖ / ‖θ‖). On the shipped "
        "runs they draw alike, as a digit classifier judges them: the spec's learning-rate schedule already shrinks "
        "the last epochs' steps tenfold, which averages the last weights by itself. The average matters most when the "
        "learning rate stays high to the end.")
    c1, c2 = st.columns(2)
    with c1:
        stride = mnist_stride_control(f"{key}_ema", GRID_STRIDE)
    with c2:
        seed = seed_control(f"{key}_ema_seed").value
    den = {weights: ddpm_of(run, weights) for weights in WEIGHTS}
    steps = len(den["spec"].timesteps(stride)) - 1
    what = f"4 samples of every digit (γ = {GUIDANCE_SCALE:g})" if den["spec"].conditional else "40 samples"
    st.caption(f"{what} per grid · stride {stride}: {counted(2 * steps, 'denoising step')} for the two.")
    progress = StepProgress(2 * steps, "Sampling with both weights…")
    pictures = {weights: grid_picture(run_cache_id(run, weights), stride, seed, GUIDANCE_SCALE, den[weights], progress)
                for weights in WEIGHTS}
    progress.done()
    columns = layout.columns(2)
    for column, (weights, picture) in zip(columns, pictures.items()):
        layout.image(picture, f"{WEIGHTS[weights]} · stride {stride}, seed {seed}", column)
        layout.download_png(picture, f"{run.config.model}_{weights_tag(weights)}_s{stride}_seed{seed}.png",
                            key=f"{key}_{weights}_png", container=column)

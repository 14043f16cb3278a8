"""What the flow edition's part-B pages share: the straight path from noise to a digit as their section 1, the Euler
steps and noise level controls, and the grid of 40 drawn live from a trained flow model."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import streamlit as st
import torch

from lib.flow.mnist import GUIDANCE_SCALE, MnistFlow, sample_grid
from lib.flow.path import interpolate
from lib.media.images import grid
from lib.train.runs import denoiser_probe, pure_noise_probe
from lib.train.training import TrainedRun
from ui import common, layout
from ui.backend import DEFAULT_SEED, StepProgress
from ui.training.page import run_sections
from ui.training.results import FAST_SAMPLING, grid_of

# The Euler step counts the pages offer: 1 (one straight jump from the noise) up to the class model's 300
EULER_STEPS = (1, 2, 5, 10, 20, 30, 50, 100, 200, 300)
PATH_DIGITS = 4  # test digits (classes 0–3) in the straight-path figure


def path_columns(test_set, times: Sequence[float], seed: int = DEFAULT_SEED) -> list[np.ndarray]:
    """The straight path x_t = (1 − t) ε + t x₁ at each of ``times``: per t one column of the first test digit of
    classes 0–3, all with the same ε (seeded)."""
    x1, _ = denoiser_probe(test_set, 0.0, classes=range(PATH_DIGITS))
    eps = pure_noise_probe(PATH_DIGITS, seed)
    return [grid(interpolate(x1, eps, t), 1, (0.0, 1.0), upscale=3) for t in times]


def flow_sections(name: str, *, key: str, what: str, path_times: Sequence[float], snapshot_caption: str) -> TrainedRun:
    """Sections 1–3 of a flow page (``ui.training.page.run_sections``): the straight path at ``path_times``, training,
    and the run's loss and per-epoch grids side by side (the deliverables' epochs 1, 5 and 10)."""

    def straight_path(_config) -> None:
        st.header("1 · The straight path from noise to a digit")
        test_set = common.mnist()[1]
        for column, t, picture in zip(layout.columns(len(path_times)), path_times, path_columns(test_set, path_times)):
            layout.image(picture, f"t = {t:g}", column)
        st.caption(f"x_t = (1 − t)·ε + t·x₁ for the same test digits x₁ and the same noise ε (seed {DEFAULT_SEED}): "
                   "t = 0 is pure noise, t = 1 the digit (values outside [0, 1] clipped for display). Along the "
                   "path x_t moves at the constant velocity x₁ − ε, the UNet's target at every t.")

    return run_sections(name, key=key, what=what, intro=straight_path, snapshot_caption=snapshot_caption,
                        side_by_side=True)


def opening_steps(spec_steps: int, slow_cpu_steps: int | None = None) -> int:
    """The Euler steps a page opens on (and the report samples with): the spec's ``spec_steps``, or ``slow_cpu_steps``
    where sampling is slow (``FAST_SAMPLING``: no GPU, no bf16 units)."""
    return spec_steps if FAST_SAMPLING or slow_cpu_steps is None else slow_cpu_steps


def euler_steps_control(key: str, spec_steps: int, slow_cpu_steps: int | None = None, container=st) -> int:
    """The number of Euler steps (h = 1 / steps) from ``EULER_STEPS``; it opens on ``opening_steps``."""
    return int(container.select_slider(
        "Euler steps", EULER_STEPS, opening_steps(spec_steps, slow_cpu_steps), key=key,
        help=f"Steps of h = 1 / steps from t = 0 to 1; the spec samples with {spec_steps}. Each step is one UNet "
             "call (two with guidance, batched)."))


def noise_control(key: str, default: float, container=st) -> float:
    """The sampler's noise level η (``lib.flow.euler.ancestral_step``): 0 is the spec's Euler step, 1 the path's
    ancestral step; it opens on ``default``, the run's own (``model_store.sampler_eta``)."""
    return float(container.slider(
        "Noise η", 0.0, 1.0, float(default), 0.1, key=key,
        help="0: the spec's Euler steps, deterministic given the starting noise. 1: each step draws the next state "
             "from the DDPM posterior of the straight path, adding fresh noise that later steps correct — the "
             "better recipe's sampler. The same number of UNet calls either way."))


ANCESTRAL_STEP = [  # ``lib.flow.euler.ancestral_step`` and ``posterior_noise``, as the pages show them
    r"x_{t'} = t'\,\hat x_1 + \sqrt{(1 - t')^2 - s^2}\;\hat\varepsilon + s\,z,\qquad "
    r"\hat x_1 = x_t + (1 - t)\,u_\theta(x_t, t),\quad \hat\varepsilon = x_t - t\,u_\theta(x_t, t),\quad "
    r"z \sim \mathcal{N}(0, I)",
    r"s = \eta\,(1 - t')\sqrt{1 - \mathrm{SNR}_t / \mathrm{SNR}_{t'}},\qquad \mathrm{SNR}_t = \big(t / (1 - t)\big)^2",
]


def frame_every(steps: int, frames: int) -> int:
    """Record every k-th Euler step, k = max(1, ⌊steps / frames⌋): about ``frames`` frames (and the last step) at any
    step count — 25 of the class model's 300 steps as of the time model's 50."""
    return max(1, steps // frames)


def frames_control(key: str, default: int, container=st) -> int:
    return int(container.slider("Frames", 2, 60, default, key=key,
                                help="Frames of the animation and the GIF, at evenly spaced Euler steps (and the last)."))


@st.cache_data(show_spinner=False)
def flow_samples(key: str, steps: int, seed: int, scale: float, _model: MnistFlow,
                 _progress: StepProgress, eta: float = 0.0) -> torch.Tensor:
    """The grid of 40 (``lib.flow.mnist.sample_grid``: 4 of each digit 0–9 in order with guidance ``scale`` for the
    class model, 40 samples for the time model) in ``steps`` steps of h = 1 / steps at noise level ``eta`` (0: Euler's),
    drawn by the weights ``key`` names: (40, 28, 28) uint8."""
    return sample_grid(_model, 1.0 / steps, seed, scale, on_step=_progress, eta=eta)


def draw_samples(model: MnistFlow, run_cache_id: str, steps: int, seed: int, scale: float = GUIDANCE_SCALE,
                 eta: float = 0.0) -> torch.Tensor:
    """``flow_samples`` under a progress bar (two UNet passes a step with guidance, batched)."""
    progress = StepProgress(steps, "Sampling 40 digits…")
    images = flow_samples(run_cache_id, steps, seed, scale, model, progress, eta)
    progress.done()
    return images


def draw_grid(model: MnistFlow, run_cache_id: str, steps: int, seed: int, scale: float = GUIDANCE_SCALE,
              eta: float = 0.0) -> np.ndarray:
    """``draw_samples`` as the picture the pages show (``grid_of``)."""
    return grid_of(draw_samples(model, run_cache_id, steps, seed, scale, eta), model.config.model)

"""Section B2 · the time-conditioned DDPM: a UNet told the timestep t predicts the noise in x_t; sampling runs it
step by step from pure noise."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.backends.mnist_model import unconditional_grid
from lib.media.plots import TrajectoryRecorder
from lib.train.judged_samples import judged_samples
from lib.train.training import TrainedRun
from ui.common import ddpm_of
from ui.report_kit import Heading, after_epochs, training_piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    samples: int = 4  # "Watch a sample being denoised"
    every: int = 1  # a frame every k steps


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling…")
def trajectory(key: str, num: int, stride: int, every: int, seed: int, _den) -> TrajectoryRecorder:
    """Frames of ``num`` samples denoised from pure noise by the time-conditioned DDPM ``_den`` (the run ``key``
    names)."""
    recorder = TrajectoryRecorder(len(_den.timesteps(stride)) - 1, every, ncols=num)
    unconditional_grid(_den, num, stride, seed, on_step=recorder)
    return recorder


def judge_samples(run: TrainedRun, weights: str, n: int, seed: int, on_step) -> torch.Tensor:
    """``n`` samples of the time DDPM ``run`` with ``weights``, as they are judged (``lib.train.judged_samples``;
    ``ui.training.better_unet.Sampler``)."""
    return judged_samples(ddpm_of(run, weights), n, seed, on_step)


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("time_ddpm.loss", "B2", "Training loss of the time-conditioned DDPM")
EPOCHS = after_epochs("time_ddpm.epochs", "B2", "Time-conditioned samples", (5, 20))


REPORT = (training_piece("B2 · time-conditioned DDPM", "time", LOSS, EPOCHS, "40 samples."),)

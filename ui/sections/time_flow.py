"""Section B 2.1 – 2.3 of the flow edition · the time-conditioned flow-matching UNet: it learns the velocity x₁ − ε of
the straight path from noise (t = 0) to a digit (t = 1); sampling integrates it with Euler steps."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.flow.mnist import MnistFlow, unconditional_grid
from lib.media.plots import FlowTrajectoryRecorder
from lib.train.judged_samples import judged_samples
from lib.train.training import FLOW_SAMPLER_STEPS, TrainedRun
from ui.common import flow_of
from ui.report_kit import Heading, after_epochs, training_piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    path_times: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # the straight-path figure: part A's three t and the ends
    steps: int = FLOW_SAMPLER_STEPS["flow_time"]  # Euler steps: the notebook's num_ts = 50 (h = 0.02)
    samples: int = 4  # "Watch samples being integrated"
    frames: int = 25  # of its animation (``ui.training.flow_page.frame_every``)


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling…")
def trajectory(key: str, num: int, steps: int, every: int, seed: int, _model: MnistFlow) -> FlowTrajectoryRecorder:
    """Frames of ``num`` samples integrated from pure noise at t = 0 to t = 1 in ``steps`` Euler steps by the time
    flow model ``_model`` (the run ``key`` names)."""
    recorder = FlowTrajectoryRecorder(steps, every, ncols=num)
    unconditional_grid(_model, num, 1.0 / steps, seed, on_step=recorder)
    return recorder


def judge_samples(run: TrainedRun, weights: str, n: int, seed: int, on_step) -> torch.Tensor:
    """``n`` samples of the time flow ``run`` with ``weights``, as they are judged (``lib.train.judged_samples``;
    ``ui.training.better_unet.Sampler``)."""
    return judged_samples(flow_of(run, weights), n, seed, on_step)


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("time_flow.loss", "B2.2", "Training loss of the time-conditioned flow")
EPOCHS = after_epochs("time_flow.epochs", "B2.3", "Time-conditioned flow samples", (1, 5, 10))


REPORT = (training_piece("B2.1 – 2.3 · time-conditioned flow", "flow_time", LOSS, EPOCHS, "40 samples."),)

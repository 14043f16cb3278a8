"""Section B 2.1 – 2.3 of the flow edition · the time-conditioned flow-matching UNet: it learns the velocity x₁ − ε of
the straight path from noise (t = 0) to a digit (t = 1); sampling integrates it with Euler steps (or, beyond the spec,
the path's ancestral steps)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import streamlit as st
import torch

from lib.flow.mnist import MnistFlow, unconditional_grid
from lib.media.plots import FlowTrajectoryRecorder
from lib.train import model_store
from lib.train.judged_samples import FLOW_STEPS, judged_samples
from lib.train.training import FLOW_SAMPLER_STEPS, TrainedRun
from ui.common import counted, flow_of
from ui.training.better_unet import JudgedSampler
from ui.report_kit import Heading, after_epochs, training_piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    path_times: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # the straight-path figure: part A's three t and the ends
    steps: int = FLOW_SAMPLER_STEPS["flow_time"]  # Euler steps: the notebook's num_ts = 50 (h = 0.02)
    samples: int = 4  # "Watch samples being integrated"
    frames: int = 25  # of its animation (``ui.training.flow_page.frame_every``)


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling…")
def trajectory(key: str, num: int, steps: int, every: int, seed: int, eta: float,
               _model: MnistFlow) -> FlowTrajectoryRecorder:
    """Frames of ``num`` samples integrated from pure noise at t = 0 to t = 1 in ``steps`` steps at noise level ``eta``
    by the time flow model ``_model`` (the run ``key`` names)."""
    recorder = FlowTrajectoryRecorder(steps, every, ncols=num)
    unconditional_grid(_model, num, 1.0 / steps, seed, on_step=recorder, eta=eta)
    return recorder


def judge_samples(run: TrainedRun, weights: str, n: int, seed: int, on_step, eta: float) -> torch.Tensor:
    """``n`` samples of the time flow ``run`` with ``weights`` at noise level ``eta``, as they are judged
    (``lib.train.judged_samples``; ``ui.training.better_unet.Sampler``)."""
    return judged_samples(flow_of(run, weights), n, seed, on_step, eta)


def sampler_words(steps: int, eta: float) -> str:
    """"50 Euler steps" (η = 0) or "50 ancestral steps at η = 1"."""
    return counted(steps, "Euler step") if not eta else f"{counted(steps, 'ancestral step')} at η = {eta:g}"


def judged_samplers() -> list[JudgedSampler]:
    """What section 5 may judge both models with: the better recipe's sampler first (the default), then the spec's
    Euler steps (one entry where the two are the same)."""
    etas = {model_store.sampler_eta(model_store.BETTER_RUNS["flow_time"]): "the better recipe's", 0.0: "the spec's"}
    return [JudgedSampler(f"{sampler_words(FLOW_STEPS, eta)} ({whose})", FLOW_STEPS, partial(judge_samples, eta=eta))
            for eta, whose in etas.items()]


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("time_flow.loss", "B2.2", "Training loss of the time-conditioned flow")
EPOCHS = after_epochs("time_flow.epochs", "B2.3", "Time-conditioned flow samples", (1, 5, 10))


REPORT = (training_piece("B2.1 – 2.3 · time-conditioned flow", "flow_time", LOSS, EPOCHS, "40 samples."),)

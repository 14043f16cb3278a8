"""Section B3 · the class-conditioned DDPM: the UNet also sees the digit (one-hot); sampling uses classifier-free
guidance."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.costs import CountingNoiseModel
from lib.backends.mnist_model import GUIDANCE_SCALE, SAMPLING_STRIDE
from lib.media.plots import TrajectoryRecorder
from lib.media.report import gif_figure
from lib.ddpm.sampling import sample
from ui.common import ddpm_of, run_cache_id
from ui.report_kit import Context, Heading, Piece, after_epochs, class_grid, shown_run, training_piece
from ui.training.results import frames_gif


@dataclass(frozen=True, kw_only=True)
class Defaults:
    scale: float = GUIDANCE_SCALE  # γ: the spec's
    digit: int = 7  # "Watch a digit being denoised"
    samples: int = 4
    every: int = 1  # a frame every k steps


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling…")
def digit_trajectory(key: str, digit: int, num: int, scale: float, stride: int, every: int, seed: int, _den,
                     _on_step=None) -> TrajectoryRecorder:
    """Every ``every``-th frame of ``num`` guided samples of ``digit`` from pure noise, by the class DDPM ``_den``
    (the run ``key`` names): what the B3 page's "Watch a digit being denoised" animates and turns into its GIF."""
    recorder = TrajectoryRecorder(len(_den.timesteps(stride)) - 1, every, ncols=num)

    def on_step(i, t, x, x0):
        recorder(i, t, x, x0)
        if _on_step is not None:
            _on_step(i, t, x, x0)

    generator = torch.Generator(device=_den.device).manual_seed(seed)
    sample(_den, _den.class_condition(digit), scale=scale, stride=stride, num_samples=num, generator=generator,
           on_step=on_step)
    return recorder


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("class_ddpm.loss", "B3", "Training loss of the class-conditioned DDPM")
EPOCHS = after_epochs("class_ddpm.epochs", "B3", "Class-conditioned samples", (5, 20))
GIF = Heading("class_ddpm.gif", "B3", "A digit being denoised (GIF)")



def _report_gif(c: Context):
    run = shown_run("class")
    den = CountingNoiseModel(ddpm_of(run))
    c.den = den  # this piece's model calls are the B3 model's
    g = DEFAULTS
    recorder = digit_trajectory(run_cache_id(run), g.digit, g.samples, g.scale, SAMPLING_STRIDE, g.every, c.seed, den,
                                c.progress)
    settings = {"digit": g.digit, "samples": g.samples, "guidance γ": g.scale, "stride": SAMPLING_STRIDE,
                "frame every": f"{g.every} step", "seed": c.seed}
    gif = gif_figure(frames_gif(recorder.x_frames), "x_t from pure noise to the digit")
    return [GIF.made(settings, [gif])], None


REPORT = (
    training_piece("B3 · class-conditioned DDPM", "class", LOSS, EPOCHS, class_grid(GUIDANCE_SCALE)),
    Piece((GIF,), "B3 · denoising GIF", lambda c: len(ddpm_of(shown_run("class")).timesteps(SAMPLING_STRIDE)) - 1,
          _report_gif),
)

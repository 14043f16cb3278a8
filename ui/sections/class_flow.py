"""Section B 2.4 – 2.6 of the flow edition · the class-conditioned flow-matching UNet: the one-hot digit scales two
feature maps, dropped one time in ten; sampling integrates the classifier-free-guided velocity with Euler steps."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.flow.euler import sample
from lib.media.costs import CountingVelocityModel
from lib.flow.mnist import GUIDANCE_SCALE, MnistFlow
from lib.media.plots import FlowTrajectoryRecorder
from lib.media.report import gif_figure
from lib.train.training import FLOW_SAMPLER_STEPS
from ui.common import flow_of, run_cache_id
from ui.report_kit import Context, Heading, Piece, after_epochs, class_grid, one, shown_run, training_piece
from ui.training.flow_page import frame_every, opening_steps
from ui.training.results import frames_gif


@dataclass(frozen=True, kw_only=True)
class Defaults:
    scale: float = GUIDANCE_SCALE  # γ of v_u + γ (v_c − v_u): the spec's 5
    steps: int = FLOW_SAMPLER_STEPS["flow_class"]  # Euler steps: the notebook's num_ts = 300
    # 300 steps of the 40-digit grid are 300 batched passes of 80 rows: ≈ 75 s in fp32 on 2 CPU cores without bf16
    # units (0.25 s a pass, bench/RESULTS.md §2); there the page opens on 30 (the DDPM page's 30 steps)
    steps_slow_cpu: int = 30
    digit: int = 7  # "Watch a digit being generated"
    samples: int = 4
    frames: int = 25  # of its animation (``ui.training.flow_page.frame_every``)


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling…")
def digit_trajectory(key: str, digit: int, num: int, scale: float, steps: int, every: int, seed: int,
                     _model: MnistFlow) -> FlowTrajectoryRecorder:
    """Every ``every``-th frame of ``num`` guided samples of ``digit`` integrated from pure noise in ``steps`` Euler
    steps by the class flow model ``_model`` (the run ``key`` names)."""
    recorder = FlowTrajectoryRecorder(steps, every, ncols=num)
    generator = torch.Generator(device=_model.device).manual_seed(seed)
    sample(_model, _model.class_condition(digit), scale=scale, num_samples=num, generator=generator, h=1.0 / steps,
           on_step=recorder)
    return recorder


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("class_flow.loss", "B2.5", "Training loss of the class-conditioned flow")
EPOCHS = after_epochs("class_flow.epochs", "B2.6", "Class-conditioned flow samples", (1, 5, 10))
GIF = Heading("class_flow.gif", "B2.6", "A digit being generated (GIF)")



def _report_gif(c: Context):
    run, g = shown_run("flow_class"), DEFAULTS
    steps = opening_steps(g.steps, g.steps_slow_cpu)
    recorder = digit_trajectory(run_cache_id(run), g.digit, g.samples, g.scale, steps, frame_every(steps, g.frames),
                                c.seed, CountingVelocityModel(flow_of(run), c.den))
    settings = {"digit": g.digit, "samples": g.samples, "guidance γ": g.scale,
                "Euler steps": f"{steps} (h = 1/{steps}; the spec's {g.steps})", "frames": len(recorder.x_frames),
                "seed": c.seed}
    return [GIF.made(settings, [gif_figure(frames_gif(recorder.x_frames), "x_t from pure noise to the digit")])], None


REPORT = (
    training_piece("B2.4 – 2.6 · class-conditioned flow", "flow_class", LOSS, EPOCHS, class_grid(GUIDANCE_SCALE)),
    Piece((GIF,), "B2.6 · generation GIF", one, _report_gif),
)

"""Section B 2.4 – 2.6 of the flow edition · the class-conditioned flow-matching UNet: the one-hot digit scales two
feature maps, dropped one time in ten; sampling integrates the classifier-free-guided velocity with Euler steps."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.flow.euler import sample
from lib.flow.mnist import GUIDANCE_SCALE, MnistFlow
from lib.media.plots import FlowTrajectoryRecorder
from lib.train.training import FLOW_SAMPLER_STEPS


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


REPORT = ()  # the flow edition's part of the whole-assignment report comes with the report's edition choice

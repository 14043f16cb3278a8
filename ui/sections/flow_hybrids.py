"""Section 3.4 of the flow edition · hybrid images by factorized diffusion on the velocity: v = lowpass(v₁) +
(v₂ − lowpass(v₂)) — the far view from prompt 1, the detail from prompt 2 (``lib.techniques.hybrids``) — with the
course's Gaussian low-pass, σ = 16 at 512 px, scaled to the model's image size (``lowpass_scaled_to``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.ddpm.sampling import randn
from lib.flow.euler import euler, scale_from_course_w
from lib.techniques.filters import two_band
from lib.techniques.hybrids import factorized_velocity
from ui.flow_backend import GUIDANCE_W, STEP, FlowBackend


@dataclass(frozen=True, kw_only=True)
class Defaults:
    far: str = "0"  # prompt 1: the low frequencies, seen from far
    near: str = "5"  # prompt 2: the detail, seen up close
    samples: int = 4
    sigma_at_512: float = 16.0  # the course's σ at 512 px, scaled to the image size
    h: float = STEP
    w: float = GUIDANCE_W


DEFAULTS = Defaults()


@st.cache_data(show_spinner="Sampling hybrids…", max_entries=32)
def hybrids(cache_id: str, far: str, near: str, kernel: int, sigma: float, w: float, h: float, num: int, seed: int,
            _backend: FlowBackend) -> torch.Tensor:
    """``num`` hybrids from x_0 ~ N(0, I) of a generator seeded with ``seed``, low frequencies from ``far`` and high
    from ``near`` (a Gaussian of ``kernel`` taps and ``sigma``), with the weights ``cache_id`` names; (num, C, H, W)
    in the model's pixel range."""
    model = _backend.model
    x0 = randn((num, *model.image_shape), torch.Generator().manual_seed(seed), device=model.device, dtype=model.dtype)
    predict = factorized_velocity(model, [model.encode_prompt(far), model.encode_prompt(near)],
                                  two_band(kernel, sigma), scale_from_course_w(w))
    return euler(x0, 0.0, h, predict).float().cpu()


REPORT = ()  # the flow edition's part of the whole-assignment report comes with the report's edition choice

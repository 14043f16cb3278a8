"""Section B 1.2.3 of the flow edition · denoising pure noise: B1's UNet trained to map pure noise ε ~ N(0, I) to a
clean digit. Its input says nothing about the digit, so under MSE it learns the one output that is best for all of
them: the centroid x̄, the mean training digit (``lib.train.centroids``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.train.centroids import per_image_mse
from lib.train.precision import infer
from lib.train.runs import pure_noise_probe


@dataclass(frozen=True, kw_only=True)
class Defaults:
    pairs: int = 8  # (noise, digit) pairs of section 1
    samples: int = 10  # fresh noise images fed to the trained model in "The lesson"


DEFAULTS = Defaults()


@dataclass(frozen=True)
class Lesson:
    """What the trained pure-noise denoiser makes of fresh noise, measured against the mean training digit x̄."""

    outputs: torch.Tensor  # D(ε) for each noise image, (N, 1, 28, 28)
    output_mse: torch.Tensor  # mean((D(ε_i) − x̄)²) per output, (N,)
    spread: float  # how much the outputs differ from each other: the per-pixel std over the N outputs, averaged


def lesson(model: torch.nn.Module, noise: torch.Tensor, centroid: torch.Tensor) -> Lesson:
    """The model's outputs for ``noise`` and how far each lies from ``centroid`` (x̄)."""
    outputs = infer(model, noise.to(next(model.parameters()).device)).float().cpu()
    spread = outputs.std(dim=0).mean().item() if len(outputs) > 1 else 0.0
    return Lesson(outputs, per_image_mse(outputs, centroid), spread)


@st.cache_data(show_spinner="Denoising pure noise…")
def centroid_lesson(key: str, num: int, seed: int, _model: torch.nn.Module, _centroid: torch.Tensor) -> Lesson:
    """``lesson`` for ``num`` fresh noise images ε ~ N(0, I) from ``seed``, by the run ``key`` names."""
    return lesson(_model, pure_noise_probe(num, seed), _centroid)


@st.cache_data(show_spinner=False)
def loss_floor(_train_images: torch.Tensor, _centroid: torch.Tensor) -> float:
    """The lowest loss any pure-noise denoiser can reach, E‖x − x̄‖² per pixel (the loss of D ≡ x̄ on the training
    digits)."""
    return per_image_mse(_train_images, _centroid).mean().item()


@st.cache_data(show_spinner=False)
def real_digit_mse(_test_images: torch.Tensor, _centroid: torch.Tensor) -> float:
    """How far a real digit lies from x̄: mean((x − x̄)²) over the test digits, the scale of the outputs' MSE."""
    return per_image_mse(_test_images, _centroid).mean().item()


REPORT = ()  # the flow edition's part of the whole-assignment report comes with the report's edition choice

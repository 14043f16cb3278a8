"""Section B 1.2.3 of the flow edition · denoising pure noise: B1's UNet trained to map pure noise ε ~ N(0, I) to a
clean digit. Its input says nothing about the digit, so under MSE it learns the one output that is best for all of
them: the centroid x̄, the mean training digit (``lib.train.centroids``)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.images import grid
from lib.media.report import png_figure
from lib.train.centroids import per_image_mse
from lib.train.precision import infer
from lib.train.runs import pure_noise_probe
from ui.common import mean_training_image, mnist, run_cache_id
from ui.report_kit import Context, Heading, Piece, after_epochs, epochs_section, loss_section, one, shown_run


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


# --- the report --------------------------------------------------------------------------------------------------------

LOSS = Heading("pure_noise.loss", "B1.2.3", "Training loss of the pure-noise denoiser")
EPOCHS = after_epochs("pure_noise.epochs", "B1.2.3", "Outputs for pure noise", (1, 5))
CENTROID = Heading("pure_noise.centroid", "B1.2.3", "The lesson: the outputs are the centroid")


def _report(c: Context):
    run, (train_set, test_set) = shown_run("pure_noise"), mnist()
    centroid = mean_training_image()
    found = centroid_lesson(run_cache_id(run), DEFAULTS.samples, c.seed, run.model, centroid)
    distance, scale = found.output_mse.mean().item(), real_digit_mse(test_set.as_float(), centroid)
    floor = loss_floor(train_set.as_float(), centroid)
    settings = {"noise images": DEFAULTS.samples, "noise seed": c.seed,
                "mean (D(ε) − x̄)² per pixel": f"{distance:.4f}", "mean (x − x̄)² of a real test digit": f"{scale:.4f}",
                "spread of the outputs (per-pixel std)": f"{found.spread:.4f}",
                "loss floor E‖x − x̄‖² per pixel": f"{floor:.4f}"}
    figures = [png_figure(grid(centroid.unsqueeze(0), 1, (0.0, 1.0), upscale=5), "x̄: the mean of the training digits"),
               png_figure(grid(found.outputs, DEFAULTS.samples, (0.0, 1.0), upscale=3),
                          f"D(ε) for {DEFAULTS.samples} fresh noise images")]
    closer = (f"The outputs lie {scale / distance:.0f} times closer to x̄ than real digits do"
              if 0 < distance < scale else "This run's outputs are not yet closer to x̄ than real digits are")
    lesson = CENTROID.made(settings, figures, f"{closer}: the input says nothing about the digit, so under MSE the "
                                              "best output is the mean training digit whatever the noise.")
    return [loss_section(LOSS, run), epochs_section(EPOCHS, run, "D(ε) for 40 fixed noise images."),
            lesson], None


REPORT = (Piece((LOSS, EPOCHS, CENTROID), "B1.2.3 · denoising pure noise", one, _report),)

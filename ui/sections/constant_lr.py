"""Section B 2.6 of the flow edition · "Can we get rid of the annoying learning rate scheduler?": the class flow model
trained at one constant learning rate beside the scheduled run of the same settings, and how closely they match."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd
import streamlit as st
import torch

from lib.flow.ddpm_vs_flow import digit_labels
from lib.flow.mnist import GRID_PER_CLASS, GUIDANCE_SCALE
from lib.media.costs import CountingVelocityModel
from lib.media.report import loss_curve_svg, png_figure, svg_figure
from lib.train.digit_classifier import Quality, quality, to_classifier_range
from lib.train.training import FLOW_CONSTANT_LR, SPEC, TrainConfig, TrainedRun, epoch_learning_rates, held_out_loss
from ui import common
from ui.report_kit import Context, Heading, Piece, shown_run
from ui.sections import class_flow
from ui.training.flow_page import flow_samples, opening_steps
from ui.training.results import grid_of
from ui.training.settings import default_config


@dataclass(frozen=True, kw_only=True)
class Defaults:
    held_out_digits: int = 2000  # test digits of the held-out loss
    held_out_seed: int = 0  # the noise, t and class dropout of the held-out loss: the same for both runs


DEFAULTS = Defaults()


def scheduled_counterpart(config: TrainConfig) -> TrainConfig:
    """The run ``config`` is compared with: the same settings with the spec's learning rate and its ExponentialLR."""
    return replace(config, constant_lr=False, lr=SPEC[config.model]["lr"])


def mean_rates(config: TrainConfig) -> tuple[float, float]:
    """The arithmetic and the geometric mean of the learning rates a run steps through, one per epoch
    (``epoch_learning_rates``); for the spec's schedule the geometric mean is lr · 0.1^((E − 1) / (2E))."""
    rates = epoch_learning_rates(config)
    return sum(rates) / len(rates), math.exp(sum(math.log(r) for r in rates) / len(rates))


def rates_table(config: TrainConfig) -> pd.DataFrame:
    """The learning rate of each epoch of the constant-rate run ``config`` and of its scheduled counterpart."""
    return pd.DataFrame({"epoch": range(1, config.epochs + 1),
                         "scheduled": epoch_learning_rates(scheduled_counterpart(config)),
                         "constant": epoch_learning_rates(config)}).set_index("epoch")


def compensation_text(config: TrainConfig) -> str:
    """The compensation in numbers: where the schedule of ``config``'s counterpart starts and ends, its arithmetic and
    geometric mean rates, and the constant rate ``config`` uses, each against the schedule's last rate."""
    rates = epoch_learning_rates(scheduled_counterpart(config))
    arithmetic, geometric = mean_rates(scheduled_counterpart(config))
    first, last = rates[0], rates[-1]
    return (
        f"Over the scheduled run's {config.epochs} epochs the rate falls from {first:.2e} to {last:.2e}. Its "
        f"arithmetic mean is **{arithmetic:.2e}** ({arithmetic / last:.1f} × its last rate), its geometric mean "
        f"**{geometric:.2e}** ({geometric / last:.1f} × its last). The app's own run without the scheduler "
        f"(data/models/flow_class_constant_lr) uses {FLOW_CONSTANT_LR:g}, the geometric mean rounded; this page's run uses **{config.lr:g}** "
        f"({config.lr / last:.1f} × the schedule's last rate, larger late steps that the average of the weights "
        "absorbs). The learning-rate control below tries others: the trade-off is faster early progress against "
        "noisier last weights.")


def last_epoch_loss(run: TrainedRun) -> float:
    """The mean training loss over the run's last epoch."""
    per_epoch = run.config.epoch_length_of_run(len(run.losses))
    return sum(run.losses[-per_epoch:]) / per_epoch


@st.cache_data(show_spinner="Computing the held-out loss…")
def test_loss(key: str, _run: TrainedRun, _test_set) -> float:
    """``held_out_loss`` of the run ``key`` names (its spec weights) on the first ``DEFAULTS.held_out_digits`` test
    digits, with the seed shared by both runs."""
    n = DEFAULTS.held_out_digits
    return held_out_loss(_run.model, _run.config, _test_set.as_float()[:n], _test_set.labels[:n], DEFAULTS.held_out_seed)


def grid_quality(samples: torch.Tensor, classifier: torch.nn.Module) -> Quality:
    """How the app's digit judge (``ui.common.digit_judge``) reads a class grid of 40 (uint8, 4 of each digit 0–9 in
    order, pixels 0–255 for [0, 1]): the share it reads confidently and the share it reads as the digit asked for."""
    images = to_classifier_range(samples.float().unsqueeze(1) / 255, (0.0, 1.0))
    return quality(classifier, images, digit_labels(GRID_PER_CLASS))


# --- the report --------------------------------------------------------------------------------------------------------

MATCH = Heading("constant_lr", "B2.6", "Can we get rid of the annoying learning rate scheduler?")


def report_steps() -> int:
    """The Euler steps of the page's grids when it opens (the class flow page's)."""
    return opening_steps(class_flow.DEFAULTS.steps, class_flow.DEFAULTS.steps_slow_cpu)


def _report(c: Context):
    train_set, test_set = common.mnist()
    config = default_config("flow_class_constant_lr", train_set)
    runs = {"with ExponentialLR": shown_run("flow_class", scheduled_counterpart(config)),
            "constant lr": shown_run("flow_class_constant_lr", config)}
    constant = runs["constant lr"].config
    arithmetic, geometric = mean_rates(scheduled_counterpart(constant))
    rates = epoch_learning_rates(scheduled_counterpart(constant))
    steps, classifier = report_steps(), common.digit_judge()[0]
    settings = {"scheduled": f"lr {rates[0]:.2e} falling to {rates[-1]:.2e} over {constant.epochs} epochs "
                             f"(arithmetic mean {arithmetic:.2e}, geometric mean {geometric:.2e})",
                "constant": f"lr {constant.lr:g} ({constant.lr / rates[-1]:.1f} × the schedule's last rate)",
                "grids": f"digits 0–9, 4 each · γ = {GUIDANCE_SCALE:g}, {steps} Euler steps, seed {c.seed}"}
    figures = []
    for name, run in runs.items():
        images = flow_samples(common.run_cache_id(run), steps, c.seed, GUIDANCE_SCALE,
                              CountingVelocityModel(common.flow_of(run), c.den), c.progress)
        read = grid_quality(images, classifier)
        settings[name] = (f"training loss of the last epoch {last_epoch_loss(run):.4f}, loss on "
                          f"{DEFAULTS.held_out_digits:,} test digits "
                          f"{test_loss(common.run_cache_id(run), run, test_set):.4f}, grid read as asked "
                          f"{read.agrees:.0%}, read confidently {read.confident:.0%}")
        figures += [png_figure(grid_of(images, run.config.model), name),
                    svg_figure(loss_curve_svg(run.losses, steps_per_epoch=run.config.epoch_length_of_run(
                        len(run.losses))), f"training loss, {name}")]
    text = ("The compensation: one constant rate near the geometric mean of the schedule's rates — on a log scale as "
            "large as the scheduled steps on average — and the moving average of the weights, which smooths the "
            "jitter the missing decay leaves. Both grids start from the same noise; the test loss uses the same "
            f"noise, times and class dropout for both (seed {DEFAULTS.held_out_seed}).")
    return [MATCH.made(settings, figures, text)], None


REPORT = (Piece((MATCH,), "B2.6 · no LR scheduler", lambda c: 2 * report_steps(), _report),)

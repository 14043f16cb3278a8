"""Section B 2.6 of the flow edition · "Can we get rid of the annoying learning rate scheduler?": the class flow model
trained at one constant learning rate beside the scheduled run of the same settings, and how closely they match."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import streamlit as st
import torch

from lib.train.centroids import nearest_centroid
from lib.train.training import SPEC, TrainConfig, TrainedRun, epoch_learning_rates, held_out_loss
from lib.flow.mnist import GRID_PER_CLASS


@dataclass(frozen=True, kw_only=True)
class Defaults:
    held_out_digits: int = 2000  # test digits of the held-out loss (and of the reader's accuracy on real digits)
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


def read_as_requested(samples: torch.Tensor, centroids: torch.Tensor) -> float:
    """The share of a class grid of 40 (uint8, 4 of each digit 0–9 in order) that the nearest-centroid reader reads as
    the digit it was asked for."""
    requested = torch.arange(10).repeat_interleave(GRID_PER_CLASS)
    return (nearest_centroid(samples.float().unsqueeze(1) / 255, centroids) == requested).float().mean().item()


@st.cache_data(show_spinner=False)
def reader_accuracy(_test_set, _centroids: torch.Tensor) -> float:
    """The nearest-centroid reader's accuracy on the first ``DEFAULTS.held_out_digits`` real test digits: the share
    it can reach at best."""
    n = DEFAULTS.held_out_digits
    return (nearest_centroid(_test_set.as_float()[:n], _centroids) == _test_set.labels[:n]).float().mean().item()


REPORT = ()  # the flow edition's part of the whole-assignment report comes with the report's edition choice

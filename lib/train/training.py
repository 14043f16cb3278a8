"""Training the part-B models of both editions with their specs' defaults, seeded, on whatever device is present.

The whole training set sits on the device as one float tensor; each epoch is a ``randperm`` over it, so the hot loop has
no DataLoader and no per-sample Python. Each batch draws fresh noise (and fresh t / class dropout for the DDPMs):

* ``denoiser`` (B1): z = x + σ ε, loss ‖D(z) − x‖², x ∈ [0, 1]; Adam, constant lr.
* ``time`` / ``class`` (B2): x0 ∈ [−1, 1], t ~ U{0 … T−1}, x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, loss ‖ε_θ(x_t, t/T[, c]) − ε‖²;
  Adam + ExponentialLR(γ = 0.1^(1/epochs)) stepped once per epoch; the class vector is zeroed with probability p_uncond.
  Beside the trained weights a DDPM run keeps their exponential moving average (``lib.train.ema``), which the optimiser never
  sees: the run returns both, and the spec's weights stay the ones the pages show by default.

The flow edition's part B (flow_edition.md §3), whose pixels stay in [0, 1] as that spec says (noise N(0, I)):

* ``pure_noise`` (B 1.2.3): B1's UNet fed pure noise ε ~ N(0, I) with the clean digit x as its target, loss ‖D(ε) − x‖²;
  Adam, constant lr. Under MSE its optimum is the mean of the training digits, whatever the input.
* ``flow_time`` / ``flow_class`` (B 2.2, 2.5): x₁ ∈ [0, 1], t ~ U[0, 1] per example, x_t = (1 − t) ε + t x₁
  (``lib.flow.interpolate``), loss ‖(x₁ − ε) − u_θ(x_t, t[, c])‖²; Adam + ExponentialLR as the DDPMs (or, with
  ``constant_lr``, the learning rate held all run: B 2.6's "get rid of the scheduler"), the same class dropout, and
  the same EMA of the weights.

Close to the hardware without changing the maths: the forward/backward runs in bf16 autocast on channels_last where
the hardware has bf16 units (``lib.train.precision``; weights, Adam and the loss stay fp32), Adam is the fused kernel on
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

from lib.train import ema as weight_average
from lib.train.cache import CorruptEntry
from lib.ddpm.diffusion import q_sample
from lib.flow.path import interpolate, velocity_target
from lib.train.precision import autocast, cpu_bf16_units, default_device, prepare, resolve
from lib.train.resume import load_state, save_state
from lib.ddpm.schedules import Schedule, linear_schedule
from lib.train.unets import build_model, check_architecture

# The spec's settings of each model: the one source of the TrainConfig fields that differ between models (the
# app's widgets, Home and scripts/train_models.py all start from ``TrainConfig.spec``).
SPEC = {
    "denoiser": dict(hidden=128, batch_size=256, lr=1e-4, epochs=5, snapshot_epochs=(1, 2, 3, 4, 5)),
    "time": dict(hidden=64, batch_size=128, lr=1e-3, epochs=20, snapshot_epochs=(1, 5, 10, 15, 20)),
    "class": dict(hidden=64, batch_size=128, lr=1e-3, epochs=20, snapshot_epochs=(1, 5, 10, 15, 20)),
    # the flow edition (flow_edition.md §3): B 1.2.3, B 2.2 and B 2.5 (10 epochs: the deliverables' epochs 1, 5, 10)
    "pure_noise": dict(hidden=128, batch_size=256, lr=1e-4, epochs=5, snapshot_epochs=(1, 5)),
    "flow_time": dict(hidden=64, batch_size=64, lr=1e-2, epochs=10, snapshot_epochs=(1, 5, 10)),
    "flow_class": dict(hidden=64, batch_size=64, lr=1e-2, epochs=10, snapshot_epochs=(1, 5, 10)),
}
DDPMS = ("time", "class")
FLOWS = ("flow_time", "flow_class")
CLASS_CONDITIONED = ("class", "flow_class")
# Euler steps of the flow models' samplers from t = 0 (the notebook's num_ts): step size 1 / num_ts, or stride / num_ts
# for the per-epoch grids (``TrainConfig.sample_stride``)
FLOW_SAMPLER_STEPS = {"flow_time": 50, "flow_class": 300}
# B 2.6's "get rid of the scheduler": the default constant learning rate of a flow_class run without ExponentialLR.
# It is the geometric mean of the rates the spec's schedule steps through, 1e-2 · 0.1^(k/10) for epochs k = 0 … 9,
# i.e. 1e-2 · 0.1^0.45 ≈ 3.55e-3, rounded: the rate the schedule passes mid-run, so that on a log scale the constant
# run's steps are as large as the scheduled run's on average — larger than its last epochs' (1.26e-3), whose noise the
# EMA of the weights averages out instead. The value to ship is chosen by the GPU sweep (scripts/train_gpu.sh).
FLOW_CONSTANT_LR = 3.5e-3
# Training throughput on a CPU at the spec's width and batch size, 2 threads (bench/RESULTS.md §1), by what computes it
# (``cpu_arithmetic``): bf16 on AMX (a Xeon), bf16 on AVX-512 bf16 units (an AMD EPYC: 2–2.3× slower than AMX), fp32
# on an AVX2-only CPU. The time-conditioned UNet costs what the class one does; the flow edition's UNets are these
# networks (pure_noise: the denoiser's; flow_time, flow_class: the DDPMs', at batch 64 as fast per image as at 128 —
# measured on the EPYC, assumed on the others).
SPEC_IMAGES_PER_SECOND = {"denoiser": {"amx": 85.3, "avx512_bf16": 49.9, "fp32": 13.0},
                          "time": {"amx": 376.0, "avx512_bf16": 178.7, "fp32": 54.0},
                          "class": {"amx": 376.0, "avx512_bf16": 169.6, "fp32": 54.0}}
SPEC_IMAGES_PER_SECOND.update(pure_noise=SPEC_IMAGES_PER_SECOND["denoiser"], flow_time=SPEC_IMAGES_PER_SECOND["time"],
                              flow_class=SPEC_IMAGES_PER_SECOND["class"])
# Training cost per image of each UNet architecture (``lib.train.unets.ARCHITECTURES``) against the spec's at the same D
# and batch: ``bench/unet_cost.py`` (bench/RESULTS.md; 1.97× and 1.91× for the two time-only models, bf16 on AMX)
ARCHITECTURE_COST = {"spec": 1.0, "attention": 1.95}
BF16_EMULATED_SLOWDOWN = 7.0  # bf16 forced on a CPU without bf16 units: ~7× slower than fp32 (bench/RESULTS.md §1)
# Fields added to TrainConfig after models were shipped, with the value every earlier configuration had: a
# configuration's JSON (its cache key) names such a field only when it holds another value, so that every earlier
# configuration keeps its key and its shipped or cached file.
LATER_FIELDS = {"constant_lr": False, "time_features": 0, "architecture": "spec"}

_INIT_LOCK = threading.Lock()
LOSS_SYNC_EVERY = {"cpu": 1, "cuda": 50}  # steps between loss read-backs (each one waits for the device)
SAVE_EVERY_SECONDS = 300.0  # how often a resumable run saves its state (~1 s for the B1 denoiser's 96 MB)
StepDone = Callable[[int, int], None]  # (sampler steps done, sampler steps in all) of a grid being drawn
SnapshotFn = Callable[[torch.nn.Module, int, StepDone], torch.Tensor]  # (model, epoch, step_done) -> uint8 grid


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its JSON is the cache key.

    Build one with ``TrainConfig.spec(model, **overrides)``. The fields that ``SPEC`` sets per model have no default
    here, so a configuration cannot silently miss the spec; the others have the one value every model stores (σ,
    p_uncond and the schedule are in every model's JSON, used or not, so that the cache keys never change; fields added
    since are in it only when set, ``LATER_FIELDS``)."""

    model: str  # a key of SPEC: "denoiser" | "time" | "class" | "pure_noise" | "flow_time" | "flow_class"
    hidden: int  # D
    epochs: int
    batch_size: int
    lr: float
    snapshot_epochs: tuple[int, ...]
    seed: int = 0
    dataset: str = "mnist"  # Digits.source of the training split
    steps_per_epoch: int | None = None  # None: one full pass over the data; else a short epoch of this many batches
    sigma: float = 0.5  # denoiser only
    num_timesteps: int = 300  # DDPMs only
    beta_start: float = 1e-4
    beta_end: float = 0.02
    p_uncond: float = 0.1  # class only
    sample_stride: int = 1  # stride of the per-epoch grids' sampler (flows: Euler steps of stride / num_ts)
    constant_lr: bool = False  # True: no ExponentialLR, ``lr`` held all run (B 2.6); for the models the spec schedules
    time_features: int = 0  # beyond the spec: Fourier features of t for the FCBlocks (``lib.train.unets.fourier_features``)
    architecture: str = "spec"  # beyond the spec, time-only models: "attention" (``lib.train.unets.AttentionTimeUNet``)

    @classmethod
    def spec(cls, model: str, **overrides) -> "TrainConfig":
        """The spec's configuration for ``model`` (``SPEC``), with any field overridden."""
        if model not in SPEC:
            raise ValueError(f"unknown model {model!r}")
        return cls(**{"model": model, **SPEC[model], **overrides})

    def as_dict(self) -> dict:
        """The fields, less the ``LATER_FIELDS`` that hold their old value."""
        return {k: v for k, v in asdict(self).items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]}

    def to_json(self) -> str:
        """The canonical JSON stored with a run (sorted keys), which a saved state must match to be resumed."""
        return json.dumps(self.as_dict(), sort_keys=True)

    def epoch_length(self, num_examples: int) -> int:
        """Optimiser steps per epoch on ``num_examples`` digits: a full pass, else the short epoch's batches."""
        return self.full_epoch_length(num_examples) if self.steps_per_epoch is None else self.steps_per_epoch

    def full_epoch_length(self, num_examples: int) -> int:
        """Batches in one full pass over ``num_examples`` digits, ⌈N / batch⌉ (the last one may be smaller)."""
        return math.ceil(num_examples / self.batch_size)

    def epoch_length_of_run(self, total_steps: int) -> int:
        """Steps per epoch of a run of ``total_steps`` optimiser steps (all its epochs have as many)."""
        return total_steps // self.epochs

    def schedule(self) -> Schedule:
        """A DDPM's noise schedule: T = ``num_timesteps`` betas rising linearly from ``beta_start`` to ``beta_end``."""
        return linear_schedule(self.num_timesteps, self.beta_start, self.beta_end)

    def decays_lr(self) -> bool:
        """Whether the run steps ExponentialLR(γ = 0.1^(1/epochs)) after each epoch: the DDPMs and flows, unless
        ``constant_lr``; the single-step denoisers keep a constant rate."""
        return self.model in DDPMS + FLOWS and not self.constant_lr

    def keeps_ema(self) -> bool:
        """Whether the run keeps the EMA of its weights (``lib.train.ema``): the models an iterative sampler draws from."""
        return self.model in DDPMS + FLOWS

    def grid_epochs(self) -> list[int]:
        """The epochs whose end draws a sample grid: the configured ones, and always the last one."""
        return sorted({e for e in self.snapshot_epochs if e <= self.epochs} | {self.epochs})

    def validate(self) -> None:
        if self.model not in SPEC:
            raise ValueError(f"unknown model {self.model!r}")
        if self.epochs < 1:
            raise ValueError("train for at least one epoch")
        if self.batch_size < 2 or self.hidden < 1 or self.lr <= 0:
            raise ValueError("batch size ≥ 2, hidden D ≥ 1 and a positive learning rate are needed")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be at least 1")
        # the grids' stride is checked here, not when the first grid is drawn at the end of epoch 1
        if self.model in DDPMS and not 1 <= self.sample_stride < self.num_timesteps:
            raise ValueError(f"sample_stride must be between 1 and {self.num_timesteps - 1}")
        if self.model in FLOWS and not 1 <= self.sample_stride <= FLOW_SAMPLER_STEPS[self.model]:
            raise ValueError(f"sample_stride must be between 1 and {FLOW_SAMPLER_STEPS[self.model]}")
        if self.time_features and self.model not in DDPMS + FLOWS:
            raise ValueError(f"{self.model} is not told the time: time_features is for the DDPMs and flows")
        check_architecture(self.model, self.architecture)
        if self.constant_lr and self.model not in DDPMS + FLOWS:
            raise ValueError(f"{self.model} keeps a constant learning rate anyway: constant_lr is for scheduled models")


@dataclass
class Progress:
    """What a training run reports after every step and every sampler step of a sample grid (and keeps, for a page
    to draw)."""

    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> uint8 grid images (N, 28, 28)
    seconds: float = 0.0  # time so far, grids included, summed over every stretch of a resumed run
    resumed_at: list[int] = field(default_factory=list)  # steps at which the run continued from a saved state
    total_grids: int = 0  # sample grids the run draws (``TrainConfig.grid_epochs``)
    grid_step: int = 0  # sampler steps done of the grid being drawn; 0 while none is being drawn
    grid_steps: int = 0  # sampler steps of one grid (all have the same); 0 until the first grid's first step
    grid_seconds: float = 0.0  # the part of ``seconds`` spent drawing grids ...
    grid_steps_done: int = 0  # ... on this many sampler steps
    stretch_began: tuple[int, float] = (0, 0.0)  # (step, training seconds) where the run last continued

    def training_seconds(self) -> float:
        """The part of ``seconds`` spent on optimiser steps."""
        return self.seconds - self.grid_seconds

    def training_seconds_left(self) -> float | None:
        """The optimiser steps left at the pace of this stretch of the run (since it last continued: a resumed run may
        be on another machine, or on one no longer busy), grid time left out:
        (training seconds − s₀) · (total − step) / (step − step₀) with (step₀, s₀) = ``stretch_began``; until the
        stretch's first step, at the mean pace of the earlier ones; None before any step."""
        if not self.step or not self.total_steps:
            return None
        step0, seconds0 = self.stretch_began
        if self.step <= step0:
            step0, seconds0 = 0, 0.0
        return (self.training_seconds() - seconds0) * (self.total_steps - self.step) / (self.step - step0)

    def grids_left(self) -> float:
        """Grids still to draw, the one being drawn counted by the share of its sampler steps left."""
        drawing = self.grid_step / self.grid_steps if self.grid_steps else 0.0
        return max(0.0, self.total_grids - len(self.snapshots) - drawing)

    def grid_seconds_left(self) -> float | None:
        """grids left × sampler steps per grid × the mean time of a sampler step so far; 0 with no grid left, None
        while no sampler step has been timed."""
        left = self.grids_left()
        if not left:
            return 0.0
        if not self.grid_steps_done:
            return None
        return left * self.grid_steps * self.grid_seconds / self.grid_steps_done

    def seconds_left(self) -> float | None:
        """Training and grids left; None until both can be estimated."""
        training, grids = self.training_seconds_left(), self.grid_seconds_left()
        return None if training is None or grids is None else training + grids


@dataclass
class TrainedRun:
    """A trained model and its record — the one type for a run, whether ``train`` just finished it or
    ``lib.train.model_store`` loaded it from disk."""

    config: TrainConfig
    model: torch.nn.Module
    losses: list[float]  # one per optimiser step
    snapshots: dict[int, torch.Tensor]  # epoch -> uint8 sample grid
    info: dict  # provenance: seconds, precision ("fp32" | "bf16"), resumed_at_steps, ema_decay; once stored also device, …
    ema: torch.nn.Module | None = None  # the EMA of the weights (lib.train.ema): flow runs, DDPM runs trained since they kept one

    def network(self, weights: str = "spec") -> torch.nn.Module:
        """The trained network with the spec's weights (the last optimiser step's, ``"spec"``) or their EMA
        (``"ema"``)."""
        if weights == "spec":
            return self.model
        if weights == "ema" and self.ema is not None:
            return self.ema
        raise ValueError(f"this run has no {weights!r} weights")

    @property
    def sampling_weights(self) -> str:
        """The weights an iterative sampler draws from: ``"ema"`` where the run kept their average (over the last
        ≈ 1,000 optimiser steps, ``lib.train.ema``), else ``"spec"``."""
        return "ema" if self.ema is not None else "spec"


def lr_decay(config: TrainConfig) -> float:
    """ExponentialLR's γ = 0.1^(1/epochs): the learning rate ends the run a tenth of where it started."""
    return 0.1 ** (1.0 / config.epochs)


def epoch_learning_rates(config: TrainConfig) -> list[float]:
    """The learning rate of each epoch k = 0 … epochs − 1: lr · γ^k under the schedule (``decays_lr``), else lr."""
    decay = lr_decay(config) if config.decays_lr() else 1.0
    return [config.lr * decay**k for k in range(config.epochs)]


def held_out_loss(model: torch.nn.Module, config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
                  seed: int = 0, batch_size: int = 500) -> float:
    """The run's training objective (``_loss``: its noise, t and class dropout) on digits it never trained on —
    ``images`` (N, 1, 28, 28) in [0, 1] with their ``labels`` — in eval mode, fp32, every draw from one generator
    seeded with ``seed``: two models of the same kind given the same digits and seed see exactly the same inputs.
    The mean over the N digits (batches weighted by their size)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    abar = None
    if config.model in DDPMS:
        abar = config.schedule().alphas_cumprod.to(device)
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x, y = images[start:start + batch_size].to(device), labels[start:start + batch_size].to(device)
            total += float(_loss(model, config, x, y, gen, abar)) * len(x)
    model.train(was_training)
    return total / len(images)


def cpu_arithmetic(precision: str) -> str:
    """What computes a CPU training at ``precision`` (a key of ``SPEC_IMAGES_PER_SECOND``'s rows): "fp32", or the
    CPU's bf16 units ("amx", "avx512_bf16"), or "bf16 emulated" where it has none."""
    if precision == "fp32":
        return "fp32"
    return cpu_bf16_units() or "bf16 emulated"


def estimated_seconds(config: TrainConfig, num_examples: int, arithmetic: str) -> float:
    """A CPU's training time for ``config`` from the benchmarked throughput of its ``arithmetic`` (``cpu_arithmetic``)
    at the spec's width and UNet: steps · batch / (images per second) · (D / D_spec)² (a UNet's convolutions cost
    ∝ D²) · the architecture's ``ARCHITECTURE_COST``. Sample grids not included."""
    steps = config.epoch_length(num_examples) * config.epochs
    width = (config.hidden / SPEC[config.model]["hidden"]) ** 2
    rates = SPEC_IMAGES_PER_SECOND[config.model]
    rate = rates["fp32"] / BF16_EMULATED_SLOWDOWN if arithmetic == "bf16 emulated" else rates[arithmetic]
    return steps * config.batch_size / rate * width * ARCHITECTURE_COST[config.architecture]


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
    compile_step: bool = False,
) -> TrainedRun:
    """Train ``config.model`` on ``train_images`` ((N, 1, 28, 28) in [0, 1]) and ``train_labels`` ((N,) int).

    ``snapshot_fn(model, epoch, step_done)`` returns the uint8 grid recorded after each of ``config.grid_epochs()``;
    a grid that takes a while (a DDPM's sampler) calls ``step_done(k, n)`` after each of its n steps, which reports
    the grid's progress and raises ``InterruptedError`` once the run is cancelled. ``on_progress`` is called whenever
    the losses have been read back (every ``loss_sync_every`` optimiser steps, and at the end of each epoch), at each
    ``step_done`` and when a grid is done; ``should_stop`` lets a caller cancel. The run's duration
    (``TrainedRun.info["seconds"]``) is the ``Progress.seconds`` of its last report.
    ``precision`` is "auto" (default: ``lib.train.precision.resolve``), "fp32" or "bf16".
    ``compile_step`` runs the training forward through ``torch.compile`` (the same parameters; the grids use the plain
    module): fused kernels for a long run, 0.66 → 0.52 s a step in a probe on a 2-core CPU, after a minute of compiling
    (bench/RESULTS.md). Like the precision it is how a run is computed, recorded in ``TrainedRun.info``.

    With ``resume`` (a file path) the run is resumable (``lib.train.resume``): it continues from the state saved there, if
    any, saves its state there every ``save_every`` seconds and when cancelled, and deletes the file once it is done.
    """
    config.validate()
    device = device or default_device()
    precision = resolve(device, precision)
    sync_every = loss_sync_every or LOSS_SYNC_EVERY.get(device.type, 1)
    gen, model, opt, sched, ema = _fresh_run(config, device, precision)
    abar = None  # ᾱ_t of the DDPMs' schedule
    if config.model in DDPMS:
        abar = config.schedule().alphas_cumprod
        abar = abar.to(device=device, dtype=torch.float32)

    x_all = train_images.to(device)
    y_all = train_labels.to(device)
    n = x_all.shape[0]
    steps_per_epoch = config.epoch_length(n)
    grid_epochs = config.grid_epochs()
    progress = Progress(total_steps=steps_per_epoch * config.epochs, total_grids=len(grid_epochs))
    order = torch.empty(0, dtype=torch.long, device=device)
    cursor = 0
    config_json = config.to_json()
    if resume:
        try:
            restored = load_state(resume, config_json, device, precision, progress, model, opt, sched, gen, ema)
        except CorruptEntry:  # a damaged save (it may have been half restored): start over
            Path(resume).unlink(missing_ok=True)
            restored, (gen, model, opt, sched, ema) = None, _fresh_run(config, device, precision)
        if restored:
            order, cursor = restored
    forward = torch.compile(model) if compile_step else model
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

    def save_now() -> None:
        nonlocal last_save
        if pending:
            read_back()
        save_state(resume, config_json, device, precision, progress, order, cursor, model, opt, sched, gen, ema)
        last_save = time.perf_counter()

    def check_stop() -> None:
        """Between two steps, or between an epoch's last step and its end (its snapshot included), the run's state is
        consistent: save it there when cancelled."""
        if should_stop and should_stop():
            if resume:
                save_now()
            raise InterruptedError("training cancelled")

    def draw_grid(epoch: int) -> None:
        """Record the epoch's grid, reporting each of its sampler steps with the time spent on grids so far."""
        began, seconds_before, steps_before = time.perf_counter(), progress.grid_seconds, progress.grid_steps_done

        def step_done(done: int, total: int) -> None:
            progress.grid_step, progress.grid_steps = done, total
            progress.grid_seconds = seconds_before + time.perf_counter() - began
            progress.grid_steps_done = steps_before + done
            progress.seconds = time.perf_counter() - start
            if on_progress:
                on_progress(progress)
            check_stop()

        model.eval()
        progress.snapshots[epoch] = snapshot_fn(model, epoch, step_done)
        progress.grid_step = 0
        progress.seconds = time.perf_counter() - start

    def end_epoch(epoch: int) -> None:
        """The grid first (it may be cancelled: the epoch has not ended then), then the LR step."""
        if epoch in grid_epochs:
            draw_grid(epoch)
        if sched:
            sched.step()
        progress.epoch = epoch
        if epoch in grid_epochs and on_progress:
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
                save_now()
            if cursor >= len(order):  # a new shuffled pass (a short epoch continues where the last one stopped)
                order = torch.randperm(n, generator=gen, device=device)
                cursor = 0
            idx = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
            with autocast(device, precision):
                loss = _loss(forward, config, x_all[idx], y_all[idx], gen, abar)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                weight_average.update(ema, model, progress.step + len(pending))
            pending.append(loss.detach())
            if len(pending) >= sync_every or i == steps_per_epoch - 1:
                read_back()
        check_stop()  # before the epoch's end: its snapshot can take a while
        end_epoch(epoch)
    if resume:
        Path(resume).unlink(missing_ok=True)
    model.eval()
    info = {"seconds": progress.seconds, "precision": precision}
    if compile_step:
        info["compiled"] = True
    if progress.resumed_at:
        info["resumed_at_steps"] = progress.resumed_at
    if ema is not None:
        info["ema_decay"] = weight_average.EMA_DECAY
    return TrainedRun(config, model, progress.losses, progress.snapshots, info, ema)


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """``build()`` — a network whose initial weights come from torch's global RNG — with that RNG seeded with ``seed``,
    under a lock (runs in other threads must not draw from it meanwhile) and restored afterwards, so the weights depend
    on ``seed`` alone and no other draw of the process is changed."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fresh_network(config: TrainConfig) -> torch.nn.Module:
    """A randomly initialised UNet of ``config``: its model kind, D, time features and architecture."""
    return build_model(config.model, config.hidden, config.time_features, config.architecture)


def _fresh_run(config: TrainConfig, device: torch.device, precision: str):
    """The seeded random generator, initial model, Adam and (DDPMs, flows) ExponentialLR and weight average of a run
    that starts from scratch."""
    gen = torch.Generator(device=device).manual_seed(config.seed)
    model = seeded_init(config.seed, lambda: fresh_network(config))
    model = prepare(model.to(device), precision)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type == "cuda")
    sched = ema = None
    if config.decays_lr():
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay(config))
    if config.keeps_ema():
        ema = weight_average.ema_copy(model)
    return gen, model, opt, sched, ema


def _loss(model, config: TrainConfig, x01: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, abar) -> torch.Tensor:
    """The batch's MSE (always in fp32: under autocast the model's output may be bf16). Every draw comes from ``gen``,
    in this order: the noise, then t, then the class dropout."""
    noise = torch.randn(x01.shape, generator=gen, device=x01.device)
    if config.model == "denoiser":
        return F.mse_loss(model(x01 + config.sigma * noise).float(), x01)
    if config.model == "pure_noise":
        return F.mse_loss(model(noise).float(), x01)
    b = x01.shape[0]
    if config.model in FLOWS:  # x₁ = x01 in [0, 1], t ~ U[0, 1]
        t = torch.rand(b, generator=gen, device=x01.device)
        inputs, target = [interpolate(x01, noise, t), t], velocity_target(x01, noise)
    else:  # DDPM: x0 in [−1, 1], t ~ U{0 … T−1}, the network sees t / T
        x0 = 2 * x01 - 1
        t = torch.randint(0, config.num_timesteps, (b,), generator=gen, device=x0.device)
        a = abar[t].view(b, 1, 1, 1)
        inputs, target = [q_sample(x0, a, noise), t.float() / config.num_timesteps], noise
    if config.model in CLASS_CONDITIONED:  # the one-hot class, zeroed with probability p_uncond
        keep = (torch.rand(b, 1, generator=gen, device=x01.device) >= config.p_uncond).float()
        inputs.append(F.one_hot(labels, 10).float() * keep)
    return F.mse_loss(model(*inputs).float(), target)


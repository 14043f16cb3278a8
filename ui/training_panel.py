"""Part-B panels: the training settings, a live view of a background training job, and what a finished run shows.

Training runs in ``ui.common.training_jobs()`` (one background thread per configuration, shared by the whole process),
so a run keeps going when the user switches pages. The settings widgets persist for the session, so coming back to the
page rebuilds the same configuration and finds the same job. The live view is an ``st.fragment`` that re-draws itself
every ``POLL_SECONDS`` while the job runs — only the panel reruns, not the page — and reruns the page once when the job
ends, so the page switches to the new run's results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import streamlit as st
import torch

from lib import model_store, resume
from lib.cache import config_key
from lib.data import Digits
from lib.images import gif_bytes, grid, png_bytes
from lib.plots import TrajectoryRecorder, animation_figure, loss_figure, schedule_figure
from lib.precision import bf16_is_fast, default_device, resolve
from lib.runs import Job
from lib.schedules import linear_schedule
from lib.text import spoken_duration, time_left
from lib.training import SPEC, Progress, TrainConfig, TrainedRun, estimated_seconds
from ui import layout
from ui.common import mnist, shipped, trained, training_jobs

POLL_SECONDS = 1.0
# B1: rows clean / noisy / denoised; B2: 4 rows of 10 samples; B3: one row of 4 per digit
SNAPSHOT_COLUMNS = {"denoiser": 8, "time": 10, "class": 4}
SHORT_STEPS = {"denoiser": 16, "time": 25, "class": 50}  # batches per epoch of a "short run" (minutes on a CPU)
MAX_EPOCHS = {"denoiser": 10, "time": 30, "class": 30}
MAX_UNFINISHED_SHOWN = 3
HIDDEN_OPTIONS = (8, 16, 32, 64, 128)
LR_OPTIONS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
BATCH_OPTIONS = (32, 64, 128, 256, 512)
SAMPLE_STRIDES = (1, 2, 5, 10, 20, 30)
STRIDES = (1, 2, 3, 5, 10, 15, 20, 30, 50)
MNIST_STRIDE = 10  # the B2/B3 sampler's default stride: T = 300 → 30 denoising steps, responsive on a CPU
# 40 digits with guidance are 80 UNet passes per step: ≈ 70 ms on a 2-core CPU with bf16 units (30 steps ≈ 2–3 s),
# ≈ 0.25 s in fp32 on one without — 10 steps there (bench/RESULTS.md §2)
GRID_STRIDE = MNIST_STRIDE if torch.cuda.is_available() or bf16_is_fast("cpu") else 30
KEEP = dict(persist_state="session")  # the training widgets keep their values for the whole session


def _with(options: tuple, value) -> tuple:
    return options if value in options else tuple(sorted({*options, value}))


# --- the training settings: one table drives the widgets, loading a run's settings into them, and the run in words ---

@dataclass(frozen=True)
class Setting:
    """One ``TrainConfig`` field: its widget (if the page offers one) and how a run's value reads in words."""

    field: str
    words: Callable[[TrainConfig], str]
    widget: Callable[[Any, TrainConfig, str], Any] | None = None  # (column, defaults, widget key) -> value
    key: str = ""  # the widget's key is b_<model>_<key> (default: the field's name)
    column: int = 0  # which of config_controls' three columns holds the widget
    models: tuple[str, ...] = tuple(SPEC)
    detailed: bool = False  # only in ``settings_text(detailed=True)``

    def widget_key(self, model: str) -> str:
        return f"b_{model}_{self.key or self.field}"


def _epochs_in_words(c: TrainConfig) -> str:
    plural = "s" if c.epochs != 1 else ""
    if c.steps_per_epoch is None:
        return f"{c.epochs} epoch{plural}"
    return f"{c.epochs} short epoch{plural} of {c.steps_per_epoch} batches"


def _epochs_widget(col, d: TrainConfig, key: str) -> int:
    return col.slider("Epochs", 1, max(MAX_EPOCHS[d.model], d.epochs), d.epochs, key=key, **KEEP)


def _hidden_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider("Hidden width D", _with(HIDDEN_OPTIONS, d.hidden), d.hidden, key=key, **KEEP)


def _lr_widget(col, d: TrainConfig, key: str) -> float:
    return col.select_slider("Learning rate", _with(LR_OPTIONS, d.lr), d.lr, format_func=lambda v: f"{v:g}", key=key,
                             **KEEP)


def _batch_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider("Batch size", _with(BATCH_OPTIONS, d.batch_size), d.batch_size, key=key, **KEEP)


def _seed_widget(col, d: TrainConfig, key: str) -> int:
    return int(col.number_input("Training seed", 0, 2**31 - 1, d.seed, key=key, **KEEP,
                                help="Seeds the initial weights, the shuffles and the training noise (0 to 2³¹ − 1)."))


def _sigma_widget(col, d: TrainConfig, key: str) -> float:
    return round(col.slider("Training σ", 0.05, 1.0, d.sigma, 0.05, key=key, **KEEP), 2)


def _sample_stride_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider("Stride of the per-epoch sample grids", _with(SAMPLE_STRIDES, d.sample_stride),
                             d.sample_stride, key=key, **KEEP,
                             help="1 = the full 300-step sampler after every snapshot epoch (slow on a CPU).")


# In the order a run's settings read in words; each widget goes to its column in this order.
SETTINGS = (
    Setting("hidden", lambda c: f"D = {c.hidden}", _hidden_widget, column=0),
    Setting("sigma", lambda c: f"σ = {c.sigma:g}", _sigma_widget, column=2, models=("denoiser",)),
    Setting("p_uncond", lambda c: f"p_uncond = {c.p_uncond:g}", models=("class",)),
    Setting("batch_size", lambda c: f"batch {c.batch_size}", _batch_widget, key="batch", column=1, detailed=True),
    Setting("lr", lambda c: f"lr {c.lr:g}", _lr_widget, column=1, detailed=True),
    Setting("seed", lambda c: f"seed {c.seed}", _seed_widget, column=2, detailed=True),
    Setting("sample_stride", lambda c: f"grid stride {c.sample_stride}", _sample_stride_widget, column=2,
            models=("time", "class"), detailed=True),
    Setting("epochs", _epochs_in_words, _epochs_widget, column=0),
)


def settings_of(model: str) -> list[Setting]:
    return [s for s in SETTINGS if model in s.models]


def default_config(kind: str, train_set: Digits) -> TrainConfig:
    """The shipped model's configuration (so the page opens on it), else the spec's — with short epochs on a CPU, never
    longer than a full one (a small training set, such as the offline digits, has short full epochs)."""
    config = model_store.shipped_config(kind)
    if config is None:
        spec = TrainConfig.spec(kind)
        short = None if torch.cuda.is_available() else min(SHORT_STEPS[kind], spec.full_epoch_steps(len(train_set)))
        fast_grids = dict(sample_stride=MNIST_STRIDE) if short and kind != "denoiser" else {}
        config = replace(spec, steps_per_epoch=short, **fast_grids)
    return replace(config, dataset=train_set.source)


def config_controls(kind: str, train_set: Digits) -> TrainConfig:
    """The training settings of ``kind`` as widgets (kept for the whole session), returned as a ``TrainConfig``.

    The widgets start from the shipped model's settings, or from an unfinished run's once its **Load its settings**
    button was pressed (``_unfinished_runs``)."""
    d = st.session_state.get(f"b_{kind}_loaded") or default_config(kind, train_set)
    columns = st.columns(3)
    values = {s.field: s.widget(columns[s.column], d, s.widget_key(kind)) for s in settings_of(kind) if s.widget}
    steps = _short_run_control(kind, d, values["batch_size"], len(train_set))
    config = replace(d, steps_per_epoch=steps, **values)
    total = config.steps_in_epoch(len(train_set)) * config.epochs
    st.caption(f"{total:,} optimiser steps of {config.batch_size} digits ({len(train_set):,} training digits).")
    if default_device().type == "cpu":
        _cpu_estimate(config, len(train_set))
    _unfinished_runs(kind, config, len(train_set))
    return config


def _short_run_control(kind: str, d: TrainConfig, batch: int, num_digits: int) -> int | None:
    """The **Short run** switch and its batches per epoch (None: full epochs), bounded by a full epoch at ``batch``.

    A larger batch shortens the full epoch under a number already chosen: the number is lowered to it, and the page
    says so (a bound widget would otherwise change it without a word)."""
    k = f"b_{kind}"
    short = st.checkbox("Short run: train only a few batches per epoch", d.steps_per_epoch is not None,
                        key=f"{k}_short", **KEEP)
    if not short:
        return None
    full = replace(d, batch_size=batch).full_epoch_steps(num_digits)
    chosen = st.session_state.get(f"{k}_steps")
    if chosen is not None and chosen > full:
        st.session_state[f"{k}_steps"] = full
    steps = int(st.number_input("Batches per epoch", 1, full, min(d.steps_per_epoch or SHORT_STEPS[kind], full),
                                key=f"{k}_steps", help=f"At most a full epoch: {full:,} batches of {batch}.", **KEEP))
    if chosen is not None and chosen > full:
        st.caption(f"Batches per epoch lowered from {chosen:,} to {full:,}: a full epoch of batch {batch} is "
                   f"{full:,} batches.")
    return steps


def _cpu_estimate(config: TrainConfig, num_digits: int) -> None:
    """How long the spec's full training and these settings take on this CPU (``lib.training.estimated_seconds``)."""
    precision = resolve("cpu")
    spec = TrainConfig.spec(config.model, dataset=config.dataset)
    spec_steps, steps = (c.steps_in_epoch(num_digits) * c.epochs for c in (spec, config))
    how = "with its bf16 units" if precision == "bf16" else "in fp32: it has no bf16 units"
    st.warning(f"No GPU here: the spec's full training ({spec.epochs} epochs, {spec_steps:,} steps) takes about "
               f"{spoken_duration(estimated_seconds(spec, num_digits, precision))} on this CPU; these settings "
               f"({steps:,} steps) about {spoken_duration(estimated_seconds(config, num_digits, precision))}, "
               f"plus their sample grids (benchmarked {how}). A GPU takes minutes. Once a run starts, its progress "
               "bar says how long is left. A long run can be done in several sittings: cancelled, or cut off by an "
               "app restart, it continues from where it stopped.")


def _unfinished_runs(kind: str, current: TrainConfig, num_digits: int) -> None:
    """Unfinished runs of other settings (their state saved in the cache, e.g. by an earlier visit), each with a
    button that loads its settings into the widgets, so that **Continue training** appears for it."""
    runs = [r for r in model_store.unfinished_runs(kind) if r.config != current and r.config.dataset == current.dataset]
    for run in runs[:MAX_UNFINISHED_SHOWN]:
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.info(f"An unfinished run of other settings: {unfinished_text(run, num_digits)}.")
        button.button("Load its settings", key=f"b_{kind}_load_{config_key(run.config.as_dict())}",
                      on_click=_load_settings, args=(kind, run.config))


def unfinished_text(run: model_store.UnfinishedRun, num_digits: int) -> str:
    """Where an unfinished run stands and when it was saved (a run going on in another process saves every few
    minutes), and its settings."""
    total = run.config.steps_in_epoch(num_digits) * run.config.epochs
    age = spoken_duration(max(0.0, time.time() - run.saved_at))
    return f"step {run.step:,} of {total:,}, saved {age} ago · {settings_text(run.config, detailed=True)}"


def _load_settings(kind: str, config: TrainConfig) -> None:
    """Button callback: set the page's widgets to ``config`` (through their session-state keys, which also updates
    them in the browser) and make it their defaults, so that its values are among their options."""
    for setting in settings_of(kind):
        if setting.widget:
            st.session_state[setting.widget_key(kind)] = getattr(config, setting.field)
    st.session_state[f"b_{kind}_short"] = config.steps_per_epoch is not None
    if config.steps_per_epoch is None:
        st.session_state.pop(f"b_{kind}_steps", None)
    else:
        st.session_state[f"b_{kind}_steps"] = config.steps_per_epoch
    st.session_state[f"b_{kind}_loaded"] = config


def settings_text(config: TrainConfig, detailed: bool = False) -> str:
    """A run's settings in words (``SETTINGS``): width, the model's own setting (σ or p_uncond) and epochs; ``detailed``
    adds the batch size, learning rate, seed and (DDPMs) the sampler stride of the per-epoch grids."""
    return ", ".join(s.words(config) for s in settings_of(config.model) if detailed or not s.detailed)


def run_to_show(kind: str, config: TrainConfig) -> tuple[TrainedRun | None, str]:
    """The run whose results the page shows, and a note saying which one it is.

    Your finished job for these settings, else a stored run of exactly these settings (shipped or cached), else the
    shipped model; None when there is none of them.
    """
    job = training_jobs().get(config)
    if job is not None and job.status == "done":
        return job.trained, "Showing **your training run**, not the shipped model."
    run = trained(config)
    if run is not None:
        where = "shipped" if model_store.shipped_config(kind) == config else "cached (trained earlier)"
        return run, f"Showing the **{where}** model for these settings."
    run = shipped(kind)
    if run is not None:
        if job is not None and job.status == "running":
            return run, "Showing the **shipped** model until your training run finishes."
        return run, "Showing the **shipped** model: the settings above are not trained yet — the button above trains them."
    return None, ""


def training_panel(config: TrainConfig, *, key: str, log_y: bool = False) -> Job | None:
    """The Train button for ``config`` and, once a job exists for it, its live progress, loss curve and snapshot."""
    jobs = training_jobs()
    job = jobs.get(config)
    stored = trained(config) is not None
    busy = job is not None and job.status in ("running", "done")
    saved_at = None if busy or stored else resume.saved_step(model_store.resume_path(config))
    if saved_at:
        label, help_text = f"Continue training from step {saved_at:,}", (
            "An earlier run of these settings stopped part-way and saved its state: it goes on from there, exactly as "
            "if it had never stopped.")
    else:
        label = "Train again" if job is not None and job.status in ("failed", "cancelled") else "Train"
        help_text = "Starts a background run; it keeps going if you open another page."
    if st.button(label, key=f"{key}_train", type="primary", disabled=busy or stored, help=help_text):
        jobs.start(config)
        st.rerun()  # redraw the page with the job running (and this button disabled)
    if stored and job is None:
        st.caption("These settings are already trained (results below). Change a setting to train a new model.")
    if job is None:
        return None
    watching = f"_{key}_watching"
    if job.status == "running":
        st.session_state[watching] = True
    st.fragment(_live_view, run_every=POLL_SECONDS if job.status == "running" else None)(job, key, log_y, watching)
    return job


def _live_view(job: Job, key: str, log_y: bool, watching: str) -> None:
    p = job.progress
    if job.status != "running":
        if st.session_state.pop(watching, False):
            st.rerun()  # the job just ended: rerun the whole page so it shows this run's results
        if job.status == "done":
            st.success(f"Training finished: {p.step:,} steps in {run_duration(job.trained)}. The results below are "
                       "from it.")
        elif job.status == "cancelled":
            saved_at = resume.saved_step(model_store.resume_path(job.config))
            st.warning(f"Training was cancelled after {p.step:,} of {p.total_steps:,} steps."
                       + (f" Its state at step {saved_at:,} is saved: **Continue training** goes on from there."
                          if saved_at else ""))
        else:
            st.error(f"Training failed: {job.error}")
        return
    if job.error:
        st.warning(job.error)
    if not p.total_steps:
        st.progress(0.0, text="Starting: loading the training digits…")
        return
    st.progress(min(p.step / p.total_steps, 1.0), text=progress_text(p, job.config.epochs))
    if p.losses:
        st.plotly_chart(loss_figure(list(p.losses), log_y=log_y, steps_per_epoch=job.config.epoch_steps(p.total_steps),
                                    title="Live training loss"), key=f"{key}_live_loss")
    snapshots = dict(p.snapshots)
    if snapshots:
        epoch = max(snapshots)
        layout.image(grid(snapshots[epoch], SNAPSHOT_COLUMNS[job.config.model], upscale=2),
                     f"Snapshot after epoch {epoch}")
    if st.button("Cancel training", key=f"{key}_cancel"):
        job.cancel.set()


def progress_text(p: Progress, epochs: int) -> str:
    """The progress bar's line: epoch, step, the sample grid being drawn (a DDPM's is a whole sampler run), loss, time
    so far and left (``lib.text.time_left``)."""
    if not p.losses:
        return "Training: first step…"
    parts = [f"Epoch {min(p.epoch + 1, epochs)}/{epochs}", f"step {p.step:,}/{p.total_steps:,}"]
    if p.grid_step:  # the grid of the epoch whose last step is done; it ends once the grid is recorded
        parts.append(f"drawing epoch {p.epoch + 1}'s samples: step {p.grid_step}/{p.grid_steps}")
    parts += [f"loss {p.losses[-1]:.4f}", f"{p.seconds:.0f} s, {time_left(p)}"]
    if p.resumed_at:
        parts.append(f"continued from step {p.resumed_at[-1]:,}")
    return " · ".join(parts)


def no_model_yet(what: str, kind: str) -> None:
    """Say that there is nothing to show until the user trains ``what``, and stop the page there."""
    st.info(f"No trained {what} yet (the shipped data/models/{kind}.safetensors is missing). Press **Train** above: "
            "a short run takes minutes on a GPU (on a CPU, the note above estimates it), and its progress bar says "
            "how long is left.")
    st.stop()


# --- a finished run --------------------------------------------------------------------------------------------------

def provenance_caption(run: TrainedRun, note: str) -> None:
    """Which run is shown (``note``), where and how long it trained (in how many sittings, if it was resumed), and
    its main settings."""
    resumed = run.info.get("resumed_at_steps") or []
    sittings = f" in {len(resumed) + 1} sittings" if resumed else ""
    st.caption(f"{note} Trained on {run.info.get('device', '?')} for {run_duration(run)}{sittings} · "
               f"{settings_text(run.config)}.")


def run_duration(run: TrainedRun) -> str:
    """A finished run's one duration (``info["seconds"]``: its training and sample grids, all sittings), in words."""
    return spoken_duration(run.info.get("seconds", 0))


def loss_panel(run: TrainedRun, *, key: str, log_default: bool) -> bool:
    """The run's loss curve with a log-scale switch; returns the switch (the live view uses the same setting)."""
    log_y = st.toggle("Log-scale loss axis", log_default, key=f"{key}_log", persist_state="session")
    st.plotly_chart(loss_figure(run.losses, log_y=log_y, steps_per_epoch=run.config.epoch_steps(len(run.losses))),
                    key=f"{key}_loss")
    tail = run.losses[-max(1, len(run.losses) // 10):]
    st.caption(f"{len(run.losses):,} steps; mean loss over the last 10 %: {np.mean(tail):.4f}.")
    return log_y


def grid_of(images: torch.Tensor, model: str) -> np.ndarray:
    """A model's grid of samples (per-epoch snapshot or the same grid drawn live) as the pages show it: the model's
    columns, pixels ×3 (×2 for the class grid, which is 10 rows tall)."""
    return grid(images, SNAPSHOT_COLUMNS[model], upscale=2 if model == "class" else 3)


def snapshot_scrubber(run: TrainedRun, *, key: str, caption: str) -> None:
    """Samples recorded after each snapshot epoch, with an epoch scrubber and a PNG download."""
    epochs = list(run.snapshots)
    if not epochs:
        st.info("This run recorded no per-epoch samples.")
        return
    epoch = st.select_slider("Epoch", epochs, epochs[-1], key=f"{key}_epoch") if len(epochs) > 1 else epochs[0]
    picture = grid_of(run.snapshots[epoch], run.config.model)
    layout.image(picture, f"{caption} after epoch {epoch} (sampler stride {run.config.sample_stride})")
    st.download_button("Download PNG", png_bytes(picture), file_name=f"{run.config.model}_epoch{epoch}.png",
                       mime="image/png", key=f"{key}_snapshot_png")


def mnist_stride_control(key: str, default: int = MNIST_STRIDE) -> int:
    """The B2/B3 sampler's stride over T = 300, from ``STRIDES`` (part A's ``ui.backend.stride_control`` is a slider
    over the active backend's T)."""
    return st.select_slider(
        "Sampling stride", STRIDES, default, key=f"{key}_stride",
        help="The sampler visits t = 299, 299 − stride, …, 0: stride 10 is 30 denoising steps, stride 1 the spec's "
             "full 300-step DDPM (slower on a CPU).")


# Encoding the frames (a PNG per animation frame, a palette per GIF frame) costs ≈ 0.3 s on a CPU: a rerun that moves
# another widget finds both here. The figure is a shared resource (st.plotly_chart copies it, never changes it).
@st.cache_resource(show_spinner=False, max_entries=16)
def _animation(frames: list[np.ndarray], labels: list[str]):
    return animation_figure(frames, labels)


@st.cache_data(show_spinner=False, max_entries=16)
def frames_gif(frames: list[np.ndarray]) -> bytes:
    """The frames as a GIF (cached: the B2/B3 pages and the whole-assignment report encode it once)."""
    return gif_bytes(frames)


def trajectory_view(recorder: TrajectoryRecorder, *, key: str, filename: str) -> None:
    """The recorded denoising frames as a plotly animation (x_t or the x̂0 estimate) and as a GIF download."""
    show = st.radio("Show", ("x_t (the sample being denoised)", "x̂0 (the model's clean estimate at that step)"),
                    horizontal=True, key=f"{key}_show")
    frames = recorder.x_frames if show.startswith("x_t") else recorder.x0_frames
    st.plotly_chart(_animation(frames, recorder.labels), key=f"{key}_anim", width="content")
    st.download_button("Download GIF", frames_gif(frames), file_name=filename, mime="image/gif", key=f"{key}_gif")


def ddpm_sections(kind: str, *, key: str, schedule_caption, snapshot_caption: str) -> TrainedRun:
    """Sections 1–3 of the B2/B3 pages — the noise schedule, training, and the run's loss and per-epoch samples —
    and the run they show (the page stops with a note if there is none yet).

    The schedule is drawn above the training controls but from the configuration they choose, so it is filled in last.
    ``schedule_caption(config)`` says in words what the plot shows.
    """
    train_set, _ = mnist()
    if train_set.source != "mnist":
        st.warning(train_set.note)
    schedule_area = st.container()
    st.header("2 · Training")
    config = config_controls(kind, train_set)
    training_panel(config, key=key, log_y=st.session_state.get(f"{key}_log", True))
    run, note = run_to_show(kind, config)
    with schedule_area:
        st.header("1 · The noise schedule")
        shown = run.config if run is not None else config
        st.plotly_chart(schedule_figure(linear_schedule(shown.num_timesteps, shown.beta_start, shown.beta_end)),
                        key=f"{key}_schedule")
        st.caption(schedule_caption(shown))

    st.header("3 · Results")
    label = "time-conditioned" if kind == "time" else "class-conditioned"
    if run is None:
        no_model_yet(f"{label} DDPM", kind)
    provenance_caption(run, note)
    loss_panel(run, key=key, log_default=True)
    st.subheader("Samples after each epoch")
    snapshot_scrubber(run, key=key, caption=snapshot_caption)
    return run

"""Part-B training settings: one table (``SETTINGS``) drives the widgets, loading an unfinished run's settings into
them, and a run's settings in words. Every session-state key of the training widgets is made here: ``b_<model>_<field>``
for a setting, ``b_<model>_short`` / ``_steps`` for the short-run switch, ``b_<model>_loaded`` for loaded settings, where
``<model>`` names the shipped run the page trains (``model_store.SHIPPED_RUNS``: a model's name, or B 2.6's
``flow_class_constant_lr``, whose widgets are its own although its model is ``flow_class``). The widgets persist for the
session, so coming back to a page rebuilds the same configuration and finds the same job."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import streamlit as st
import torch

from lib.train import model_store, run_defaults
from lib.train.cache import config_key
from lib.train.data import Digits
from lib.train.precision import default_device, resolve
from lib.media.text import spoken_duration
from lib.train.training import (BF16_EMULATED_SLOWDOWN, CLASS_CONDITIONED, DDPMS, FLOWS, SPEC, TrainConfig,
                                cpu_arithmetic, estimated_seconds)
from lib.media.text import whole_number
from ui.inputs import Entry, last_valid, whole_number_input

MAX_EPOCHS = {"denoiser": 10, "time": 30, "class": 30, "pure_noise": 10, "flow_time": 20, "flow_class": 20}
MAX_UNFINISHED_SHOWN = 3
HIDDEN_OPTIONS = (8, 16, 32, 64, 128)
LR_OPTIONS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
BATCH_OPTIONS = (32, 64, 128, 256, 512)
SAMPLE_STRIDES = (1, 2, 5, 10, 20, 30)
KEEP = dict(persist_state="session")  # the training widgets keep their values for the whole session
GRID_STRIDE_WORDS = "stride of the per-epoch grids"  # the one name of TrainConfig.sample_stride, wherever it is shown
# how the estimate's throughput was measured, for each ``lib.train.training.cpu_arithmetic``
CPU_ARITHMETIC_WORDS = {"amx": "benchmarked in bf16 on a CPU with AMX units, as this one has",
                        "avx512_bf16": "benchmarked in bf16 on a CPU with AVX-512 bf16 units, as this one has",
                        "fp32": "benchmarked in fp32 on a CPU without bf16 units",
                        "bf16 emulated": "bf16 forced on a CPU without bf16 units: emulated, about "
                                         f"{BF16_EMULATED_SLOWDOWN:g}× slower than fp32"}
# lib.train.unets.ARCHITECTURES in words
ARCHITECTURE_WORDS = {"spec": "t in two blocks only, no attention",
                      "attention": "self-attention at 7×7 and t in every block"}
TRAIN = "Train"  # the button the settings feed (ui.training.live), named where an invalid entry holds it back


def _with(options: tuple, value) -> tuple:
    return options if value in options else tuple(sorted({*options, value}))


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

    def widget_key(self, run: str) -> str:
        """The widget's session-state key on the page that trains the shipped run ``run``."""
        return f"b_{run}_{self.key or self.field}"


def _epochs_in_words(c: TrainConfig) -> str:
    plural = "s" if c.epochs != 1 else ""
    if c.steps_per_epoch is None:
        return f"{c.epochs} epoch{plural}"
    return f"{c.epochs} short epoch{plural} of {c.steps_per_epoch} batches"


def _lr_in_words(c: TrainConfig) -> str:
    """"lr 0.001"; "lr 0.0035 held constant" for a run without its spec's ExponentialLR (B 2.6)."""
    return f"lr {c.lr:g}" + (" held constant" if c.constant_lr else "")


def _epochs_widget(col, d: TrainConfig, key: str) -> int:
    return col.slider("Epochs", 1, max(MAX_EPOCHS[d.model], d.epochs), d.epochs, key=key, **KEEP)


def _hidden_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider("Hidden width D", _with(HIDDEN_OPTIONS, d.hidden), d.hidden, key=key, **KEEP)


def _lr_widget(col, d: TrainConfig, key: str) -> float:
    return col.select_slider("Learning rate", _with(LR_OPTIONS, d.lr), d.lr, format_func=lambda v: f"{v:g}", key=key,
                             **KEEP)


def _batch_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider("Batch size", _with(BATCH_OPTIONS, d.batch_size), d.batch_size, key=key, **KEEP)


def _seed_widget(col, d: TrainConfig, key: str) -> Entry:
    return whole_number_input("Training seed", d.seed, key=key, minimum=0, maximum=2**31 - 1, feeds=TRAIN,
                              container=col, help="Seeds the initial weights, the shuffles and the training noise.")


def _sigma_widget(col, d: TrainConfig, key: str) -> float:
    return round(col.slider("Training σ", 0.05, 1.0, d.sigma, 0.05, key=key, **KEEP), 2)


def _sample_stride_widget(col, d: TrainConfig, key: str) -> int:
    return col.select_slider(GRID_STRIDE_WORDS.capitalize(), _with(SAMPLE_STRIDES, d.sample_stride),
                             d.sample_stride, key=key, **KEEP,
                             help="1 = the spec's full sampler after every snapshot epoch (300 DDPM steps; 50 or 300 "
                                  "Euler steps for the flows), slow on a CPU; stride s takes about 1/s of the steps.")


# In the order a run's settings read in words; each widget goes to its column in this order.
SETTINGS = (
    Setting("hidden", lambda c: f"D = {c.hidden}", _hidden_widget, column=0),
    # beyond the spec only (no words for the spec's bare t at its two places)
    Setting("architecture", lambda c: ARCHITECTURE_WORDS[c.architecture] if c.architecture != "spec" else "",
            models=("time", "flow_time")),
    Setting("time_features", lambda c: f"t as {c.time_features} Fourier features" if c.time_features else "",
            models=("time", "flow_time")),
    Setting("sigma", lambda c: f"σ = {c.sigma:g}", _sigma_widget, column=2, models=("denoiser",)),
    Setting("p_uncond", lambda c: f"p_uncond = {c.p_uncond:g}", models=CLASS_CONDITIONED),
    Setting("batch_size", lambda c: f"batch {c.batch_size}", _batch_widget, key="batch", column=1, detailed=True),
    Setting("lr", _lr_in_words, _lr_widget, column=1, detailed=True),
    Setting("seed", lambda c: f"seed {c.seed}", _seed_widget, column=2, detailed=True),
    Setting("sample_stride", lambda c: f"{GRID_STRIDE_WORDS} {c.sample_stride}", _sample_stride_widget, column=2,
            models=DDPMS + FLOWS, detailed=True),
    Setting("epochs", _epochs_in_words, _epochs_widget, column=0),
)


def settings_of(model: str) -> list[Setting]:
    return [s for s in SETTINGS if model in s.models]


def default_config(run: str, train_set: Digits) -> TrainConfig:
    """The configuration the page of the shipped run ``run`` opens on (``lib.train.run_defaults``: the shipped
    model's, else the run's own, short on a CPU)."""
    return run_defaults.default_config(run, len(train_set), train_set.source, on_gpu=torch.cuda.is_available())


def config_controls(run: str, train_set: Digits) -> tuple[TrainConfig, bool]:
    """The training settings of the shipped run ``run`` (a key of ``model_store.SHIPPED_RUNS``; its model's widgets)
    as widgets (kept for the whole session), returned as a ``TrainConfig``, and whether every entry on screen is valid
    (else the config holds the last valid ones and **Train** waits).

    The widgets start from the shipped model's settings, or from an unfinished run's once its **Load its settings**
    button was pressed (``_unfinished_runs``)."""
    d = st.session_state.get(f"b_{run}_loaded") or default_config(run, train_set)
    columns = st.columns(3)
    values = {s.field: s.widget(columns[s.column], d, s.widget_key(run)) for s in settings_of(d.model) if s.widget}
    entries = [v for v in values.values() if isinstance(v, Entry)]
    steps = _short_run_control(run, d, values["batch_size"], len(train_set))
    if steps is not None:
        entries.append(steps)
    values.update({field: v.value for field, v in values.items() if isinstance(v, Entry)})
    config = replace(d, steps_per_epoch=None if steps is None else steps.value, **values)
    total = config.epoch_length(len(train_set)) * config.epochs
    st.caption(f"{total:,} optimiser steps of {config.batch_size} digits ({len(train_set):,} training digits).")
    if default_device().type == "cpu":
        _cpu_estimate(run, config, len(train_set))
    _unfinished_runs(run, config, len(train_set))
    return config, all(e.valid for e in entries)


def _short_run_control(run: str, d: TrainConfig, batch: int, num_digits: int) -> Entry | None:
    """The **Short run** switch and its batches per epoch (None: full epochs), bounded by a full epoch at ``batch``.

    A larger batch shortens the full epoch under a number already accepted: the number is lowered to it, and the page
    says so. A number typed above a full epoch is refused instead (``ui.inputs``), and **Train** waits."""
    k = f"b_{run}"
    short = st.checkbox("Short run: train only a few batches per epoch", d.steps_per_epoch is not None,
                        key=f"{k}_short", **KEEP)
    if not short:
        return None
    full = replace(d, batch_size=batch).full_epoch_length(num_digits)
    chosen = last_valid(f"{k}_steps")
    if chosen is not None and chosen > full and _entered(f"{k}_steps") == chosen:
        st.session_state[f"{k}_steps"] = full
    steps = whole_number_input("Batches per epoch", min(d.steps_per_epoch or run_defaults.SHORT_STEPS[d.model], full),
                               key=f"{k}_steps", minimum=1, maximum=full, feeds=TRAIN,
                               help=f"At most a full epoch: {full:,} batches of {batch}.")
    if chosen is not None and chosen > full and steps.value == full:
        st.caption(f"Batches per epoch lowered from {chosen:,} to {full:,}: a full epoch of batch {batch} is "
                   f"{full:,} batches.")
    return steps


def _entered(key: str) -> int | None:
    """The whole number in a field's state (text typed, or a number a loader stored), None if it holds none."""
    try:
        return whole_number(str(st.session_state[key]))
    except (KeyError, ValueError):
        return None


def _cpu_estimate(run: str, config: TrainConfig, num_digits: int) -> None:
    """How long the shipped run ``run``'s full training — the spec's, or a recipe's beyond it — and these settings take
    on this CPU (``lib.train.training.estimated_seconds``)."""
    arithmetic = cpu_arithmetic(resolve("cpu"))
    full = model_store.shipped_run_config(run, dataset=config.dataset)
    whose = "this recipe's" if run in model_store.BETTER_RUNS.values() else "the spec's"
    full_steps, steps = (c.epoch_length(num_digits) * c.epochs for c in (full, config))
    st.warning(f"No GPU here: {whose} full training ({full.epochs} epochs, {full_steps:,} steps) takes about "
               f"{spoken_duration(estimated_seconds(full, num_digits, arithmetic))} on this CPU; these settings "
               f"({steps:,} steps) about {spoken_duration(estimated_seconds(config, num_digits, arithmetic))}, "
               f"plus their sample grids ({CPU_ARITHMETIC_WORDS[arithmetic]}, 2 threads). A GPU takes minutes. "
               "Once a run starts, its progress "
               "bar says how long is left. A long run can be done in several sittings: cancelled, or cut off by an "
               "app restart, it continues from where it stopped.")


def _unfinished_runs(run: str, current: TrainConfig, num_digits: int) -> None:
    """Unfinished runs of other settings (their state saved in the cache, e.g. by an earlier visit), each with a
    button that loads its settings into the widgets, so that **Continue training** appears for it. Only runs with or
    without a learning-rate schedule, and with the UNet and time embedding, that ``current`` has: B 2.6's page and the
    class flow page train the same model each way, and a time-only page its spec's and its better recipe (no widget
    sets either)."""
    runs = [r for r in model_store.unfinished_runs(current.model) if r.config != current
            and r.config.dataset == current.dataset and r.config.constant_lr == current.constant_lr
            and (r.config.time_features, r.config.architecture) == (current.time_features, current.architecture)]
    for unfinished in runs[:MAX_UNFINISHED_SHOWN]:
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.info(f"An unfinished run of other settings: {unfinished_text(unfinished, num_digits)}.")
        button.button("Load its settings", key=f"b_{run}_load_{config_key(unfinished.config.as_dict())}",
                      on_click=_load_settings, args=(run, unfinished.config))


def unfinished_text(run: model_store.UnfinishedRun, num_digits: int) -> str:
    """Where an unfinished run stands and when it was saved (a run going on in another process saves every few
    minutes), whether it is being trained right now, and its settings."""
    total = run.config.epoch_length(num_digits) * run.config.epochs
    age = spoken_duration(max(0.0, time.time() - run.saved_at))
    now = " (being trained right now, by another process or session)" if run.training_now else ""
    return f"step {run.step:,} of {total:,}, saved {age} ago{now} · {settings_text(run.config, detailed=True)}"


def _load_settings(run: str, config: TrainConfig) -> None:
    """Button callback: set the page's widgets to ``config`` (through their session-state keys, which also updates
    them in the browser) and make it their defaults, so that its values are among their options."""
    for setting in settings_of(config.model):
        if setting.widget:
            st.session_state[setting.widget_key(run)] = getattr(config, setting.field)
    st.session_state[f"b_{run}_short"] = config.steps_per_epoch is not None
    if config.steps_per_epoch is None:
        st.session_state.pop(f"b_{run}_steps", None)
    else:
        st.session_state[f"b_{run}_steps"] = config.steps_per_epoch
    st.session_state[f"b_{run}_loaded"] = config


def settings_text(config: TrainConfig, detailed: bool = False) -> str:
    """A run's settings in words (``SETTINGS``): width, the model's own setting (σ or p_uncond) and epochs; ``detailed``
    adds the batch size, learning rate (and whether it is held constant), seed and (DDPMs, flows) the stride of the
    per-epoch grids."""
    words = (s.words(config) for s in settings_of(config.model) if detailed or not s.detailed)
    return ", ".join(w for w in words if w)

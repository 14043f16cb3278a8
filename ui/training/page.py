"""The sections every part-B page of a sampler shares: what the model learns (drawn last, from the configuration
shown), training, and the run's results."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from lib.train.training import TrainConfig, TrainedRun
from ui import common
from ui.training.live import training_panel
from ui.training.results import (loss_panel, no_model_yet, provenance_caption, run_to_show, snapshot_row,
                                 snapshot_scrubber)
from ui.training.settings import config_controls


def run_sections(name: str, *, key: str, what: str, intro: Callable[[TrainConfig], None], snapshot_caption: str,
                 side_by_side: bool = False) -> TrainedRun:
    """Sections 1–3 of a page that trains the shipped run ``name`` (``what`` it is, in words): ``intro`` — section 1,
    e.g. the DDPM's noise schedule — then training, and the run's loss and per-epoch samples (an epoch scrubber, or
    ``side_by_side``); returns the run they show (the page stops with a note if there is none yet).

    Section 1 is drawn above the training controls but from the configuration they choose (the run's, once there is
    one), so it is filled in last: ``intro(config)``.
    """
    train_set, _ = common.mnist()
    if train_set.source != "mnist":
        st.warning(train_set.note)
    intro_area = st.container()
    st.header("2 · Training")
    config, valid = config_controls(name, train_set)
    training_panel(config, key=key, log_y=st.session_state.get(f"{key}_log", True), ready=valid)
    run, note = run_to_show(name, config)
    with intro_area:
        intro(run.config if run is not None else config)

    st.header("3 · Results")
    if run is None:
        no_model_yet(what, name)
    provenance_caption(run, note)
    loss_panel(run, key=key, log_default=True)
    st.subheader("Samples after each epoch")
    if side_by_side:
        snapshot_row(run, key=key, caption=snapshot_caption)
    else:
        snapshot_scrubber(run, key=key, caption=snapshot_caption)
    return run

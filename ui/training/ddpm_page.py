"""The first three sections every DDPM page of part B shares: the noise schedule, training, and the run's results."""

from __future__ import annotations

import streamlit as st

from lib.media.plots import SCHEDULE_TERMS, schedule_figure
from lib.ddpm.schedules import linear_schedule
from lib.train.training import TrainedRun
from ui import common
from ui.training.live import training_panel
from ui.training.results import loss_panel, no_model_yet, provenance_caption, run_to_show, snapshot_scrubber
from ui.training.settings import config_controls


def ddpm_sections(model_id: str, *, key: str, schedule_caption, snapshot_caption: str) -> TrainedRun:
    """Sections 1–3 of the B2/B3 pages — the noise schedule, training, and the run's loss and per-epoch samples —
    and the run they show (the page stops with a note if there is none yet).

    The schedule is drawn above the training controls but from the configuration they choose, so it is filled in last.
    ``schedule_caption(config)`` says in words what the plot shows.
    """
    train_set, _ = common.mnist()
    if train_set.source != "mnist":
        st.warning(train_set.note)
    schedule_area = st.container()
    st.header("2 · Training")
    config, valid = config_controls(model_id, train_set)
    training_panel(config, key=key, log_y=st.session_state.get(f"{key}_log", True), ready=valid)
    run, note = run_to_show(model_id, config)
    with schedule_area:
        st.header("1 · The noise schedule")
        shown = run.config if run is not None else config
        st.plotly_chart(schedule_figure(linear_schedule(shown.num_timesteps, shown.beta_start, shown.beta_end)),
                        key=f"{key}_schedule")
        st.caption(f"{schedule_caption(shown)} {SCHEDULE_TERMS}")

    st.header("3 · Results")
    label = "time-conditioned" if model_id == "time" else "class-conditioned"
    if run is None:
        no_model_yet(f"{label} DDPM", model_id)
    provenance_caption(run, note)
    loss_panel(run, key=key, log_default=True)
    st.subheader("Samples after each epoch")
    snapshot_scrubber(run, key=key, caption=snapshot_caption)
    return run

"""The first three sections every DDPM page of part B shares: the noise schedule, training, and the run's results."""

from __future__ import annotations

import streamlit as st

from lib.media.plots import SCHEDULE_TERMS, schedule_figure
from lib.train import model_store
from lib.train.training import TrainedRun
from ui.training.better_unet import described
from ui.training.page import run_sections


def ddpm_sections(name: str, *, key: str, schedule_caption, snapshot_caption: str) -> TrainedRun:
    """Sections 1–3 of the B2/B3 pages (``ui.training.page.run_sections``) for the shipped run ``name``, with the noise
    schedule as section 1 — ``schedule_caption(config)`` says in words what the plot shows — and the run they show."""

    def schedule(shown) -> None:
        st.header("1 · The noise schedule")
        st.plotly_chart(schedule_figure(shown.schedule()),
                        key=f"{key}_schedule")
        st.caption(f"{schedule_caption(shown)} {SCHEDULE_TERMS}")

    label = "time-conditioned" if model_store.SHIPPED_RUNS[name][0] == "time" else "class-conditioned"
    return run_sections(name, key=key, what=described(name, f"{label} DDPM"), intro=schedule,
                        snapshot_caption=snapshot_caption)

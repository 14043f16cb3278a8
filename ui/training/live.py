"""A live view of a part-B training job: the Train / Continue button, then the job's progress, live loss curve and
latest per-epoch samples.

Training runs in ``ui.common.training_jobs()`` (one background thread per configuration, shared by the whole process),
so a run keeps going when the user switches pages. The live view is an ``st.fragment`` that re-draws itself every
``POLL_SECONDS`` while the job runs — only the panel reruns, not the page — and reruns the page once when the job ends,
so the page switches to the new run's results.
"""

from __future__ import annotations

import streamlit as st

from lib.train import model_store, resume
from lib.media.images import grid
from lib.media.plots import loss_figure
from lib.train.runs import Job
from lib.media.text import time_left
from lib.train.training import Progress, TrainConfig
from ui import common, layout
from ui.training.results import SNAPSHOT_COLUMNS, run_duration

POLL_SECONDS = 1.0


def training_panel(config: TrainConfig, *, key: str, log_y: bool = False, ready: bool = True) -> Job | None:
    """The Train button for ``config`` and, once a job exists for it, its live progress, loss curve and snapshot.
    ``ready``: every setting on screen is valid (``ui.training.settings.config_controls``); else the button waits."""
    jobs = common.training_jobs()
    job = jobs.get(config)
    stored = common.trained(config) is not None
    busy = job is not None and job.status in ("running", "done")
    saved_at = None if busy or stored else resume.saved_step(model_store.resume_path(config))
    if saved_at:
        label, help_text = f"Continue training from step {saved_at:,}", (
            "An earlier run of these settings stopped part-way and saved its state: it goes on from there, exactly as "
            "if it had never stopped.")
    else:
        label = "Train again" if job is not None and job.status in ("failed", "cancelled") else "Train"
        help_text = "Starts a background run; it keeps going if you open another page."
    if st.button(label, key=f"{key}_train", type="primary", disabled=busy or stored or not ready,
                 help=help_text):
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
        st.plotly_chart(loss_figure(list(p.losses), log_y=log_y, steps_per_epoch=job.config.epoch_length_of_run(p.total_steps),
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
    so far and left (``lib.media.text.time_left``)."""
    if not p.losses:
        return "Training: first step…"
    parts = [f"Epoch {min(p.epoch + 1, epochs)}/{epochs}", f"step {p.step:,}/{p.total_steps:,}"]
    if p.grid_step:  # the grid of the epoch whose last step is done; it ends once the grid is recorded
        parts.append(f"drawing epoch {p.epoch + 1}'s samples: step {p.grid_step}/{p.grid_steps}")
    parts += [f"loss {p.losses[-1]:.4f}", f"{p.seconds:.0f} s, {time_left(p)}"]
    if p.resumed_at:
        parts.append(f"continued from step {p.resumed_at[-1]:,}")
    return " · ".join(parts)

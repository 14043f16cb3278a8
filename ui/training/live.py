"""A live view of a part-B training job: the Train / Continue button, then the job's progress, live loss curve and
latest per-epoch samples.

Training runs in ``ui.training.place.session_jobs()``: one background thread per configuration in the app's process,
or — with a model server — one job per configuration on its Ray cluster, which may first wait in its queue ("queued,
N ahead of you"). Either way a run keeps going when the user switches pages. The live view is an ``st.fragment`` that
re-draws itself every ``POLL_SECONDS`` while the job is queued or runs — only the panel reruns, not the page — and
reruns the page once when the job ends, so the page switches to the new run's results.
"""

from __future__ import annotations

import streamlit as st

from lib.backends.remote import RemoteUnavailable
from lib.backends.remote_training import ACTIVE, RemoteJob  # ACTIVE: a job still to finish, which the view follows
from lib.train import model_store, resume
from lib.media.images import grid
from lib.media.plots import loss_figure
from lib.train.runs import Job
from lib.media.text import time_left
from lib.train.training import Progress, TrainConfig
from ui import common, layout
from ui.training.place import HERE, on_server, place_choice, session_jobs
from ui.training.results import SNAPSHOT_COLUMNS, run_duration

POLL_SECONDS = 1.0


def training_panel(config: TrainConfig, *, key: str, log_y: bool = False, ready: bool = True) -> Job | None:
    """The Train button for ``config`` and, once a job exists for it, its live progress, loss curve and snapshot.
    ``ready``: every setting on screen is valid (``ui.training.settings.config_controls``); else the button waits."""
    place_choice()
    jobs = session_jobs()
    job = jobs.get(config)
    stored = common.trained(config) is not None
    busy = job is not None and job.status in (*ACTIVE, "done")
    remote = on_server(jobs)  # the server keeps a stopped run's state itself and resumes it when it is asked again
    path = model_store.resume_path(config)
    on_this_machine = not (busy or stored or remote)  # else this process's job, the stored model or the server decides
    elsewhere = on_this_machine and resume.being_trained(path)  # e.g. by scripts/train_models.py
    saved_at = resume.saved_step(path) if on_this_machine else None
    if elsewhere:
        st.info(resume.TRAINED_ELSEWHERE + (f" Its last saved state stands at step {saved_at:,}." if saved_at else ""))
    if saved_at:
        label, help_text = f"Continue training from step {saved_at:,}", (
            "An earlier run of these settings stopped part-way and saved its state: it goes on from there, exactly as "
            "if it had never stopped.")
    else:
        label = "Train again" if job is not None and job.status in ("failed", "cancelled") else "Train"
        help_text = "Starts a background run; it keeps going if you open another page."
    if st.button(label, key=f"{key}_train", type="primary", disabled=busy or stored or elsewhere or not ready,
                 help=help_text):
        try:
            jobs.start(config)
        except RemoteUnavailable as err:  # down, refused the token, or refused the configuration: one line
            st.error(f"{err}. Choose **{HERE}** above to train in the app instead.")
        else:
            st.rerun()  # redraw the page with the job running (and this button disabled)
    if stored and job is None:
        st.caption("These settings are already trained (results below). Change a setting to train a new model.")
    if job is None:
        return None
    watching = f"_{key}_watching"
    if job.status in ACTIVE:
        st.session_state[watching] = True
    st.fragment(_live_view, run_every=POLL_SECONDS if job.status in ACTIVE else None)(job, key, log_y, watching)
    return job


def _live_view(job: Job | RemoteJob, key: str, log_y: bool, watching: str) -> None:
    p = job.progress
    if job.status not in ACTIVE:
        if st.session_state.pop(watching, False):
            st.rerun()  # the job just ended: rerun the whole page so it shows this run's results
        trained = job.trained if job.status == "done" else None  # a server's run: downloaded and checked here
        if trained is not None:
            st.success(f"Training finished: {p.step:,} steps in {run_duration(trained)}. The results below are "
                       "from it.")
        elif job.status == "done":
            st.error(f"The finished run could not be fetched: {job.error}")
        elif job.status == "cancelled":
            st.warning(f"Training was cancelled after {p.step:,} of {p.total_steps:,} steps." + _saved_note(job)
                       if p.step else "Training was cancelled before its first step.")
        else:
            st.error(f"Training failed: {job.error}")
        return
    if job.error:
        st.warning(job.error)
    if job.status == "queued":
        ahead = job.queue_position
        st.progress(0.0, text=f"Queued on the model server, {ahead} ahead of you: every GPU share is training "
                              "another run." if ahead else "Queued on the model server: yours starts next.")
        _cancel_button(job, key)
        return
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
    _cancel_button(job, key)


def _cancel_button(job: Job | RemoteJob, key: str) -> None:
    """The Cancel button; what it did is a toast (the view redraws every second): a server's run that others watch
    goes on for them, and a server that does not answer leaves the run as it was."""
    if not st.button("Cancel training", key=f"{key}_cancel"):
        return
    try:
        stopped = job.stop()
    except RemoteUnavailable as err:
        st.toast(f"The run was not cancelled: {err}.", icon="⚠️")
        return
    if not stopped:
        st.toast("Classmates are watching this run too: it goes on for them, and you no longer follow it.")


def _saved_note(job: Job | RemoteJob) -> str:
    """Where a cancelled run's state is kept, for the next try to go on from it."""
    if isinstance(job, RemoteJob):
        return " The model server kept its state: **Train again** goes on from there."
    saved_at = resume.saved_step(model_store.resume_path(job.config))
    return f" Its state at step {saved_at:,} is saved: **Continue training** goes on from there." if saved_at else ""


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

"""What a finished part-B run shows: which run it is and where it trained, its loss curve, its per-epoch samples and
its denoising animations."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lib.backends.remote_training import ACTIVE
from lib.train import model_store
from lib.media.images import gif_bytes, grid
from lib.backends.mnist_model import SAMPLING_STRIDE
from lib.media.plots import TrajectoryRecorder, animation_figure, loss_figure
from lib.train.precision import bf16_is_fast
from lib.media.text import spoken_duration
from lib.train.training import CLASS_CONDITIONED, TrainConfig, TrainedRun
from ui import common, layout
from ui.backend import FAMILY_DEFAULTS, stride_slider
from ui.training.place import session_jobs
from ui.training.settings import settings_text

# B1: rows clean / noisy / denoised; B2 and the time flow: 4 rows of 10 samples; B3 and the class flow: one row of 4 per
# digit; B 1.2.3's pure-noise denoiser: 4 rows of 10 outputs
SNAPSHOT_COLUMNS = {"denoiser": 8, "time": 10, "class": 4, "pure_noise": 10, "flow_time": 10, "flow_class": 4}
MNIST_STRIDE = SAMPLING_STRIDE  # the B2/B3 sampler's default stride
# 40 digits with guidance are 80 UNet passes per step: ≈ 70 ms on a 2-core CPU with bf16 units (30 steps ≈ 2–3 s),
# ≈ 0.25 s in fp32 on one without (bench/RESULTS.md §2). Where sampling is that fast, the pages open their grids of 40
# on the spec's sampler (stride 10 for the DDPMs; the flows' full Euler steps); without, on about 10 steps.
FAST_SAMPLING = torch.cuda.is_available() or bf16_is_fast("cpu")
GRID_STRIDE = MNIST_STRIDE if FAST_SAMPLING else 30


def run_to_show(name: str, config: TrainConfig) -> tuple[TrainedRun | None, str]:
    """The run whose results the page of the shipped run ``name`` shows, and a note saying which one it is.

    Your finished job for these settings, else a stored run of exactly these settings (shipped or cached), else the
    shipped run; None when there is none of them.
    """
    job = session_jobs().get(config)
    if job is not None and job.status == "done" and job.trained is not None:
        return job.trained, "Showing **your training run**, not the shipped model."
    run = common.trained(config)
    if run is not None:
        where = "shipped" if model_store.shipped_config(name) == config else "cached (trained earlier)"
        return run, f"Showing the **{where}** model for these settings."
    run = common.shipped(name)
    if run is not None:
        if job is not None and job.status in ACTIVE:
            return run, "Showing the **shipped** model until your training run finishes."
        return run, "Showing the **shipped** model: the settings above are not trained yet — the button above trains them."
    return None, ""


def no_model_yet(what: str, name: str) -> None:
    """Say that there is nothing to show until the user trains ``what`` (the shipped run ``name``), and stop the page
    there."""
    st.info(f"No trained {what} yet (the shipped data/models/{name}.safetensors is missing). Press **Train** above: "
            "a short run takes minutes on a GPU (on a CPU, the note above estimates it), and its progress bar says "
            "how long is left.")
    st.stop()


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
    st.plotly_chart(loss_figure(run.losses, log_y=log_y, steps_per_epoch=run.config.epoch_length_of_run(len(run.losses))),
                    key=f"{key}_loss")
    tail = run.losses[-max(1, len(run.losses) // 10):]
    st.caption(f"{len(run.losses):,} steps; mean loss over the last 10 %: {np.mean(tail):.4f}.")
    return log_y


def grid_of(images: torch.Tensor, model: str) -> np.ndarray:
    """A model's grid of samples (per-epoch snapshot or the same grid drawn live) as the pages show it: the model's
    columns, pixels ×3 (×2 for the class grids, which are 10 rows tall)."""
    return grid(images, SNAPSHOT_COLUMNS[model], upscale=2 if model in CLASS_CONDITIONED else 3)


def snapshot_scrubber(run: TrainedRun, *, key: str, caption: str) -> None:
    """Samples recorded after each snapshot epoch, with an epoch scrubber and a PNG download."""
    epochs = list(run.snapshots)
    if not epochs:
        st.info("This run recorded no per-epoch samples.")
        return
    epoch = st.select_slider("Epoch", epochs, epochs[-1], key=f"{key}_epoch") if len(epochs) > 1 else epochs[0]
    picture = grid_of(run.snapshots[epoch], run.config.model)
    layout.image(picture, f"{caption} after epoch {epoch} (stride {run.config.sample_stride})")
    layout.download_png(picture, f"{run.config.model}_epoch{epoch}.png", key=f"{key}_snapshot_png")


def snapshot_row(run: TrainedRun, *, key: str, caption: str) -> None:
    """Every per-epoch picture of the run side by side (the flow edition's deliverables: epochs 1, 5 and 10), each with
    a PNG download."""
    if not run.snapshots:
        st.info("This run recorded no per-epoch samples.")
        return
    for column, (epoch, images) in zip(layout.columns(len(run.snapshots)), run.snapshots.items()):
        picture = grid_of(images, run.config.model)
        layout.image(picture, f"{caption} after epoch {epoch}", column)
        layout.download_png(picture, f"{run.config.model}_epoch{epoch}.png", key=f"{key}_snapshot_{epoch}_png",
                            container=column)


def mnist_stride_control(key: str, default: int = MNIST_STRIDE) -> int:
    """The B2/B3 sampler's stride over the MNIST DDPM's T = 300 (``ui.backend.stride_slider``, part A's control)."""
    mnist = FAMILY_DEFAULTS["mnist"]
    return stride_slider(TrainConfig.spec("class").num_timesteps, default, f"{key}_stride", maximum=mnist.max_stride)


# Encoding the frames (a PNG per animation frame, a palette per GIF frame) costs ≈ 0.3 s on a CPU: a rerun that moves
# another widget finds both here. The figure is a shared resource (st.plotly_chart copies it, never changes it).
@st.cache_resource(show_spinner=False, max_entries=16)
def _animation(frames: list[np.ndarray], labels: list[str]):
    return animation_figure(frames, labels)


@st.cache_data(show_spinner=False, max_entries=16)
def frames_gif(frames: list[np.ndarray]) -> bytes:
    """The frames as a GIF (cached: the B2/B3 pages and the whole-assignment report encode it once)."""
    return gif_bytes(frames)


DDPM_FRAMES = ("x_t (the sample being denoised)", "x̂0 (the model's clean estimate at that step)")
FLOW_FRAMES = ("x_t (the sample being integrated)", "x̂₁ = x_t + (1 − t)·v̂ (where one straight step from there lands)")


def trajectory_view(recorder: TrajectoryRecorder, *, key: str, filename: str, names: tuple[str, str] = DDPM_FRAMES) -> None:
    """The recorded frames as a plotly animation — the state x_t, or the model's estimate of the image at that step
    (``names``: the radio's words for the two) — and as a GIF download."""
    show = st.radio("Show", names, horizontal=True, key=f"{key}_show")
    frames = recorder.x_frames if show == names[0] else recorder.x0_frames
    st.plotly_chart(_animation(frames, recorder.labels), key=f"{key}_anim", width="content")
    layout.download("Download GIF", frames_gif(frames), filename, "image/gif", key=f"{key}_gif")

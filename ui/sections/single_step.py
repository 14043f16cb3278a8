"""Section B1 · the single-step denoising UNet: z = x + σε, trained to give back x in one forward pass, and how it
copes with noise levels it never saw."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

from lib.media.images import grid
from lib.train.precision import infer
from lib.media.report import png_figure
from lib.train.runs import SNAPSHOT_DIGITS, denoiser_probe
from ui.common import mnist, run_cache_id
from ui.report_kit import Context, Heading, Piece, after_epochs, epochs_section, loss_section, one, shown_run


@dataclass(frozen=True, kw_only=True)
class Defaults:
    # The noise levels of the noising figure and the out-of-distribution sweep, per edition (``ui.sections.EDITIONS``):
    # the DDPM edition's B1 (assignment.md) and the flow edition's §3 1.2 (flow_edition.md) happen to list the same σ
    sigmas: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "ddpm": (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0),
        "flow": (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0),
    })
    grid_digits: int = 4  # digits per column of the noising figure
    digit: int = 3  # "One digit, any σ"
    sigma: float = 0.5  # its σ slider: the spec's training σ


DEFAULTS = Defaults()


def denoise_with(run, x: torch.Tensor) -> torch.Tensor:
    """The trained single-step denoiser D(x) of ``run`` (a ``TrainedRun``), on the CPU."""
    return infer(run.model, x.to(next(run.model.parameters()).device)).cpu()


def noising_columns(test_set, seed: int, sigmas: tuple[float, ...]) -> list[np.ndarray]:
    """B1's noising figure: per σ of ``sigmas`` (an edition's ``DEFAULTS.sigmas``) one column of the first test
    digits, noised with the same ε."""
    return [grid(denoiser_probe(test_set, s, seed)[1][:DEFAULTS.grid_digits], 1, (0.0, 1.0), upscale=3)
            for s in sigmas]


@st.cache_data(show_spinner="Denoising the σ sweep…")
def ood_sweep(key: str, seed: int, sigmas: tuple[float, ...], _run, _test_set) -> tuple[
        list[np.ndarray], list[np.ndarray], list[float], np.ndarray]:
    """The trained D (the run ``key`` names) on the same digits noised at every σ of ``sigmas``: noisy and denoised
    strips, per-σ MSE and one PNG grid."""
    noisy_rows, out_rows, errors, tiles = [], [], [], []
    for s in sigmas:
        clean, noisy = denoiser_probe(_test_set, s, seed)
        out = denoise_with(_run, noisy)
        errors.append(float(torch.mean((out - clean) ** 2)))
        noisy_rows.append(grid(noisy, SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2))
        out_rows.append(grid(out, SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2))
        tiles += [noisy, out]
    return noisy_rows, out_rows, errors, grid(torch.cat(tiles), SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2)


# --- the report --------------------------------------------------------------------------------------------------------

NOISING = Heading("single_step.noising", "B1", "Noising digits at the spec's σ")
LOSS = Heading("single_step.loss", "B1", "Training loss of the single-step denoiser")
EPOCHS = after_epochs("single_step.epochs", "B1", "Denoised test digits", (1, 5))
SWEEP = Heading("single_step.sweep", "B1", "Out-of-distribution σ sweep")


def _report(c: Context):
    run, test_set = shown_run("denoiser"), mnist()[1]
    sigmas = DEFAULTS.sigmas[c.edition]
    columns = noising_columns(test_set, c.seed, sigmas)
    noise = NOISING.made({"σ": ", ".join(f"{s:g}" for s in sigmas), "noise seed": c.seed},
                    [png_figure(p, f"σ = {s:g}") for s, p in zip(sigmas, columns)],
                    "The same test digits and the same ε at growing σ.")
    epochs = epochs_section(EPOCHS, run, "Rows: clean, noisy (σ = "
                                                      f"{run.config.sigma:g}), denoised.")
    _, _, errors, sweep = ood_sweep(run_cache_id(run), c.seed, sigmas, run, test_set)
    sweep_section = SWEEP.made({"trained at σ": run.config.sigma, "noise seed": c.seed,
                                         "MSE per σ": ", ".join(f"{s:g}: {e:.4f}"
                                                                for s, e in zip(sigmas, errors))},
                            [png_figure(sweep, "per σ (" + ", ".join(f"{s:g}" for s in sigmas)
                                        + "): noisy row, then denoised row")])
    return [noise, loss_section(LOSS, run), epochs, sweep_section], None


REPORT = (Piece((NOISING, LOSS, EPOCHS, SWEEP), "B1 · single-step denoiser", one, _report),)

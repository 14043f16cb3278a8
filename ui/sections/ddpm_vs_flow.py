"""Beyond the assignment · DDPM and flow matching side by side: the class-conditioned DDPM and flow model of part B,
the same UNet, data and starting noise, compared by what they draw for a given number of network evaluations
(``lib.flow.ddpm_vs_flow``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from lib.backends.mnist_model import SAMPLING_STRIDE
from lib.flow.ddpm_vs_flow import (INK_TOLERANCE, MID_GREY, NFE_COUNTS, TARGET_AGREEMENT, Contender, DdpmContender,
                                   FlowContender, Measured, Trajectory, fewest_evaluations, fewest_for_finished_ink,
                                   mid_grey_share, quality_curve, trajectory)
from lib.media.costs import CountingNoiseModel, CountingVelocityModel
from lib.media.images import grid
from lib.media.report import png_figure
from lib.train.digit_classifier import CONFIDENT, JUDGE_DIGITS, JUDGE_EPOCHS, TEST_DIGITS, Quality, to_classifier_range
from lib.train.training import TrainConfig, TrainedRun
from ui import common
from ui.common import counted, ddpm_of, flow_of, run_cache_id
from ui.report_kit import Context, Heading, Piece, one
from ui.sections import training_section
from ui.training.results import provenance_caption, run_to_show
from ui.training.settings import default_config

COMPARED = ("class", "flow_class")  # the models compared: the class-conditioned DDPM and flow model
NAMES = {"class": "class-conditioned DDPM", "flow_class": "class-conditioned flow model"}


@dataclass(frozen=True, kw_only=True)
class Defaults:
    nfe_counts: tuple[int, ...] = NFE_COUNTS  # the quality curve's evaluation counts
    per_digit: int = 2  # samples of each digit at each count
    target: float = TARGET_AGREEMENT
    digit: int = 7  # "One digit, two paths"
    # the paths' evaluations: the DDPM pages' default sampler (T = 300 at stride 10: 30 steps)
    path_nfe: int = TrainConfig.spec("class").num_timesteps // SAMPLING_STRIDE
    strip_frames: int = 11  # frames of each path in the strip: 0, 10, …, 100 % of the way


DEFAULTS = Defaults()


def compared_runs() -> dict[str, tuple[TrainedRun | None, str]]:
    """Each compared model's run as its own page shows it with its widgets at their defaults (the shipped run, your
    finished or cached run of those settings), and the note saying which it is; (None, "") where there is none. A model
    no page of the app trains can only be its shipped run."""
    train_set = common.mnist()[0]
    runs = {}
    for model in COMPARED:
        if training_section(model) is None:
            run = common.shipped(model)
            runs[model] = (run, "Showing the **shipped** model." if run is not None else "")
        else:
            runs[model] = run_to_show(model, default_config(model, train_set))
    return runs


def the_two_models() -> dict[str, TrainedRun]:
    """Section 1 of the page: each model's provenance, or what is missing and where to train it; returns the runs
    present, by model."""
    runs = compared_runs()
    for column, (model, (run, note)) in zip(st.columns(len(runs)), runs.items()):
        with column:
            st.subheader(NAMES[model][0].upper() + NAMES[model][1:])
            if run is None:
                st.warning(missing_text({model: None}))
                section = training_section(model)
                if section is not None:
                    st.page_link(section.page, label=f"Train it: {section.label}", icon="➡️")
            else:
                provenance_caption(run, note)
    return {run.config.model: run for run, _ in runs.values() if run is not None}


def contender_of(run: TrainedRun) -> Contender:
    """A compared run as the comparison drives it: the DDPM's ancestral sampler or the flow model's Euler loop."""
    return DdpmContender(ddpm_of(run)) if run.config.model == "class" else FlowContender(flow_of(run))


@st.cache_data(show_spinner=False)
def measured(cache_id: str, judge_id: str, per_digit: int, nfe_counts: tuple[int, ...], seed: int, _contender: Contender,
             _classifier, _on_step=None) -> list[Measured]:
    """The quality curve of the run ``cache_id`` names (``lib.flow.ddpm_vs_flow.quality_curve``), judged by the classifier
    ``judge_id`` names."""
    return quality_curve(_contender, _classifier, per_digit, nfe_counts, seed, _on_step)


@st.cache_data(show_spinner="Sampling one digit…")
def path(cache_id: str, digit: int, nfe: int, seed: int, _contender: Contender) -> Trajectory:
    """One digit's path in ``nfe`` steps by the run ``cache_id`` names (``lib.flow.ddpm_vs_flow.trajectory``)."""
    return trajectory(_contender, digit, nfe, seed)


def frame_indices(num_steps: int, shown: int) -> list[int]:
    """``shown`` frames evenly spread over a path of ``num_steps`` steps (all of them when it has fewer):
    round(j · k / (shown − 1)), the first and the last always in."""
    return sorted({round(j * num_steps / (shown - 1)) for j in range(shown)})


def strip(paths: dict[str, Trajectory], shown: int, upscale: int = 2) -> np.ndarray:
    """The paths as rows of one picture (in ``paths``' order), each ``shown`` frames evenly spread over its steps."""
    rows = [p.frames[frame_indices(len(p.frames) - 1, shown)] for p in paths.values()]
    return grid(torch.cat(rows), len(rows[0]), upscale=upscale)


def halfway_frame(num_steps: int) -> int:
    """The frame after half the evaluations (rounded up: after the one step of a one-step path)."""
    return (num_steps + 1) // 2


def path_summary(paths: dict[str, Trajectory]) -> str:
    """How far each path has come after half its evaluations: 1 − its relative distance to its final sample."""
    k = len(next(iter(paths.values())).frames) - 1
    i = halfway_frame(k)
    parts = [f"{name} has covered **{1 - p.distance_to_final()[i]:.0%}** of the distance from its noise to its final "
             "digit" for name, p in paths.items()]
    return f"After {counted(i, 'evaluation')} of {k}, " + "; ".join(parts) + "."


def samples_picture(point: Measured, upscale: int = 2) -> np.ndarray:
    """A quality point's samples with one column per digit 0–9 and one row per sample of each."""
    per_digit = len(point.samples) // 10
    by_sample = point.samples.reshape(10, per_digit, *point.samples.shape[1:]).transpose(0, 1)
    return grid(by_sample.reshape(-1, *point.samples.shape[1:]), 10, upscale=upscale)


def judge_text(real: Quality, num_train: int) -> str:
    """What judges the samples, and how it reads real digits."""
    return (f"Judge: a small CNN digit classifier trained here on {min(JUDGE_DIGITS, num_train):,} training digits for "
            f"{counted(JUDGE_EPOCHS, 'epoch')} (`lib/train/digit_classifier.py`; kept in the model cache). "
            f"*Read as asked*: its most likely digit is the one requested; "
            f"*confident*: some digit gets probability ≥ {CONFIDENT:g}. On real test digits it reads "
            f"{real.agrees:.1%} correctly and {real.confident:.1%} confidently — the ceiling for any model.")


def quality_table(points: dict[str, list[Measured]], nfe_counts: tuple[int, ...]) -> dict[str, list]:
    """The measured shares as a table: one row per NFE, per model the share read as asked, the confident one and the
    mid-grey pixels' share."""
    columns = {}
    for name, ps in points.items():
        columns[f"{name}: as asked"] = [f"{p.quality.agrees:.0%}" for p in ps]
        columns[f"{name}: confident"] = [f"{p.quality.confident:.0%}" for p in ps]
        columns[f"{name}: mid-grey pixels"] = [f"{p.mid_grey:.1%}" for p in ps]
    return {"NFE": list(nfe_counts), **columns}


@st.cache_data(show_spinner=False)
def real_mid_grey() -> float:
    """The mid-grey share of the first ``TEST_DIGITS`` real test digits: the ink a finished sample should have."""
    return mid_grey_share(to_classifier_range(common.mnist()[1].as_float()[:TEST_DIGITS], (0.0, 1.0)))


def ink_summary(points: dict[str, list[Measured]], real: float) -> str:
    """Where each objective's ink is finished (``fewest_for_finished_ink``): the lesson the steps still teach once the
    classifier's reading has saturated."""
    largest = max(p.nfe for ps in points.values() for p in ps)
    parts = []
    for name, ps in points.items():
        k = fewest_for_finished_ink(ps, real)
        parts.append(f"{name} at **{counted(k, 'evaluation')}** ({next(p for p in ps if p.nfe == k).mid_grey:.1%})"
                     if k is not None else f"{name} not within {counted(largest, 'evaluation')}")
    return (f"**The ink.** Real digits are nearly black and white: {real:.1%} of their pixels are mid-grey "
            f"(|x| < {MID_GREY:g} in [−1, 1]). A sample still blurry or noisy has more. Within "
            f"{INK_TOLERANCE:g}× that share: " + "; ".join(parts) + ".")


def quality_summary(points: dict[str, list[Measured]], target: float) -> str:
    """How many evaluations each objective needs to reach ``target`` (the fewest measured), and where the first to get
    there leaves the other."""
    fewest = {name: fewest_evaluations(ps, target) for name, ps in points.items()}
    largest = max(p.nfe for ps in points.values() for p in ps)
    parts = [f"{name} reaches {target:.0%} read as asked at **{counted(k, 'evaluation')}**" if k is not None else
             f"{name} stays below {target:.0%} up to {counted(largest, 'evaluation')}" for name, k in fewest.items()]
    text = "; ".join(parts) + "."
    reached = [k for k in fewest.values() if k is not None]
    if len(points) == 2 and reached:
        first = min(reached)
        at_first = {name: next(p for p in ps if p.nfe == first).quality.agrees for name, ps in points.items()}
        text += " At " + counted(first, "evaluation") + ": " + ", ".join(
            f"{name} {share:.0%}" for name, share in at_first.items()) + "."
    return text[0].upper() + text[1:]


# --- the report --------------------------------------------------------------------------------------------------------

PATHS = Heading("ddpm_vs_flow.paths", "B+", "DDPM and flow matching: one digit's two paths")


def _report_paths(c: Context):
    """The page's paths at its defaults, of the models there are (a missing one is named in the text)."""
    g = DEFAULTS
    runs = {model: run for model, (run, _) in compared_runs().items()}
    if all(run is None for run in runs.values()):
        raise LookupError("no trained class-conditioned DDPM or flow model: " + missing_text(runs))
    counter = c.den = CountingNoiseModel(ddpm_of(runs["class"])) if runs["class"] else c.den
    paths = {}
    for run in filter(None, runs.values()):
        contender = (DdpmContender(counter) if run.config.model == "class"
                     else FlowContender(CountingVelocityModel(flow_of(run), counter)))
        paths[contender.name] = path(run_cache_id(run), g.digit, g.path_nfe, c.seed, contender)
    settings = {"digit": g.digit, "network evaluations": g.path_nfe, "seed": c.seed}
    figure = png_figure(strip(paths, g.strip_frames), "rows: " + ", ".join(paths) + "; from the same noise (left) to "
                        "the digit (right), evenly spaced in evaluations")
    text = path_summary(paths) if len(paths) == 2 else missing_text(runs)
    return [PATHS.made(settings, [figure], text)], None


def missing_text(runs: dict[str, TrainedRun | None]) -> str:
    """Which compared models are missing and where each is trained."""
    return " ".join(f"No {NAMES[model]} yet: data/models/{model}.safetensors is not shipped and no run of its page's "
                    f"default settings is trained — train it on the {where_trained(model)}."
                    for model, run in runs.items() if run is None)


def where_trained(model: str) -> str:
    section = training_section(model)
    return f"page “{section.label}”" if section else "command line (scripts/train_models.py)"


REPORT = (Piece((PATHS,), "DDPM vs flow · two paths", one, _report_paths),)

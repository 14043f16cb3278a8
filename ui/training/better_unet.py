"""Beyond the spec: "a better time-conditioned UNet" (the flow edition's graduate extra, and where the DDPM edition's B2
stops). A time-only page offers its spec's run or the better recipe (``model_store.BETTER_RUNS``), the spec's by
default, and sets the two side by side as the app's digit judge reads their samples: how often each draws a digit the
judge is sure of, and how often each digit, against MNIST's own proportions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import streamlit as st
import torch

from lib.media.images import grid
from lib.media.plots import digit_shares_figure
from lib.train import model_store
from lib.train.digit_classifier import (CONFIDENT, confident_share, digit_shares, label_shares,
                                       largest_share_gap)
from lib.train.training import TrainConfig, TrainedRun
from ui import common, layout
from ui.backend import StepProgress, seed_control
from ui.common import counted, run_cache_id
from ui.training.results import run_duration
from ui.training.settings import ARCHITECTURE_WORDS, SETTINGS

SAMPLE_COUNTS = (100, 200, 500, 1000)
DEFAULT_SAMPLES = 200
SHOWN = 40  # samples of each model shown as a grid (4 rows of 10)
# The fields a recipe may change, in the order its changes are listed, in words: a training setting's own words
# (``ui.training.settings.SETTINGS``), and for the two no widget sets, these
RECIPE_FIELDS = ("architecture", "hidden", "time_features", "beta_end", "epochs", "batch_size", "lr")
RECIPE_WORDS: dict[str, Callable[[TrainConfig], str]] = {
    "architecture": lambda c: ARCHITECTURE_WORDS[c.architecture],
    "time_features": lambda c: f"t as {c.time_features} Fourier features" if c.time_features else "the bare number t",
    "beta_end": lambda c: (f"β rising to {c.beta_end:g}, so that x_T keeps {c.schedule().terminal_signal():.0%} "
                           "of the digit"),
}


def architecture_formulas(config: TrainConfig) -> list[str]:
    """The better UNet's blocks as LaTeX (``lib.train.unets.AttentionTimeUNet``, ``FilmResBlock``, ``SelfAttention``),
    with ``config``'s count of Fourier features; the section's formulas above them are the spec's UNet's."""
    k = config.time_features
    return [
        rf"e = \mathrm{{FC}}\big([\sin \omega_k t,\ \cos \omega_k t]_{{k=1}}^{{{k}}}\big),\qquad "
        rf"\omega_k = 1000^{{(k-1)/{k - 1}}}",
        r"\mathrm{Res}(h, e) = \mathrm{skip}(h) + \mathrm{conv}_2\big(\mathrm{conv}_1(h) \odot (1 + \gamma(e))"
        r" + \beta(e)\big),\qquad (\gamma, \beta) = W e",
        r"\mathrm{Attn}(h) = h + W_O\,\mathrm{softmax}\big(QK^\top / \sqrt{d}\big)\,V,\qquad Q, K, V "
        r"\text{ from } \mathrm{GroupNorm}(h) \text{ at the } 7 \times 7 = 49 \text{ positions}",
        r"s_3 = \mathrm{Attn}\big(\mathrm{Res}(\mathrm{down}(s_2), e)\big),\qquad m = \mathrm{Attn}\big("
        r"\mathrm{Res}(s_3 + \mathrm{unflatten}(\mathrm{flatten}(s_3)), e)\big)",
    ]


# (run, weights, number of samples, seed, progress) → the run's unconditional samples in the judge's [−1, 1], drawn
# with those weights by the page's own sampler at its default steps
Sampler = Callable[[TrainedRun, str, int, int, StepProgress], torch.Tensor]


@dataclass(frozen=True)
class JudgedSampler:
    """A sampler the comparison may draw both models' samples with."""

    words: str  # which sampler, in words (also its cache key): "50 Euler steps (the spec's)"
    calls: int  # UNet calls per batch of samples
    draw: Sampler


def unet_choice(spec_run: str, key: str) -> str:
    """The shipped run the page trains and shows: ``spec_run`` (the default) or its recipe beyond the spec."""
    better = model_store.BETTER_RUNS[spec_run]
    names = {spec_run: "The spec's UNet", better: "Beyond the spec: a better UNet"}
    chosen = st.radio("UNet", list(names), format_func=names.get, horizontal=True, key=f"{key}_unet",
                      persist_state="session", help=recipe_text(spec_run))
    if chosen == better:  # the formulas above are the spec's: say at once what the better UNet changes
        st.caption(recipe_text(spec_run))
        with st.expander("The better UNet's blocks, as formulas"):
            for formula in architecture_formulas(model_store.shipped_run_config(better)):
                st.latex(formula)
            st.caption("Every conv block of the spec's UNet becomes a residual block told t (Res); self-attention "
                       "(Attn) lets each of the 49 positions of the 7×7 maps see all the others, around the spec's "
                       "global bottleneck.")
    return chosen


def described(name: str, what: str) -> str:
    """``what`` the shipped run ``name`` trains, in words, marked "better" for a recipe beyond the spec."""
    return f"better {what}" if name in model_store.BETTER_RUNS.values() else what


def recipe_changes(spec: TrainConfig, better: TrainConfig) -> list[str]:
    """What the better recipe changes, in words: "D = 80 (spec: D = 64)", … (``RECIPE_FIELDS`` that differ)."""
    words = {**{s.field: s.words for s in SETTINGS}, **RECIPE_WORDS}
    return [f"{words[f](better)} (spec: {words[f](spec)})" for f in RECIPE_FIELDS
            if getattr(spec, f) != getattr(better, f)]


def recipe_text(spec_run: str) -> str:
    better_run = model_store.BETTER_RUNS[spec_run]
    spec, better = (model_store.shipped_run_config(name) for name in (spec_run, better_run))
    eta = model_store.sampler_eta(better_run)
    sampler = (f" and the straight path's ancestral step (noise η = {eta:g}) instead of the spec's Euler step" if eta
               else "")
    kept = "the objective, " + ("" if eta else "the sampler, ") + "the UNet's levels and widths"
    return (f"Beyond the spec: {', '.join(recipe_changes(spec, better))}; it samples with the moving average of its "
            f"weights{sampler}. Everything else — {kept} — is the spec's.")


@dataclass(frozen=True)
class Reading:
    """How the judge reads one model's samples."""

    confident: float  # the share read as some digit with probability ≥ CONFIDENT
    shares: tuple[float, ...]  # the share read as each digit 0–9
    picture: np.ndarray  # the first ``SHOWN`` samples as a grid


@st.cache_data(show_spinner=False)
def judged(cache_id: str, judge_id: str, n: int, seed: int, sampler_words: str, _sampler: Sampler, _run: TrainedRun,
           _classifier, _progress: StepProgress) -> Reading:
    """The judge ``judge_id`` names reading ``n`` samples (``seed``) of the run ``cache_id`` names, drawn with the
    moving average of its weights (``judged_weights``) by the sampler ``sampler_words`` names."""
    x = _sampler(_run, judged_weights(_run), n, seed, _progress)
    return Reading(confident_share(_classifier, x), tuple(digit_shares(_classifier, x).tolist()),
                   grid(x[:SHOWN], 10, (-1.0, 1.0)))


def judged_weights(run: TrainedRun) -> str:
    """The weights a run is judged with: their moving average, part of the better recipe and standard DDPM practice
    (the spec's weights where a run kept none)."""
    return "ema" if run.ema is not None else "spec"


def comparison(spec_run: str, *, key: str, samplers: Sequence[JudgedSampler]) -> None:
    """Section 5 of a time-only page: the spec's shipped run and the better one, the same number of samples from the
    same noise by the same sampler (one of ``samplers``, the first by default), judged."""
    st.header("5 · The spec's UNet against a better one")
    better_run = model_store.BETTER_RUNS[spec_run]
    st.markdown(
        "The spec's UNet draws many digits a classifier is unsure of, and some digits more often than MNIST has "
        f"them. {recipe_text(spec_run)} Both shipped models draw the same number of samples from the same noise "
        f"with the same sampler, with the moving average of their weights, and the app's digit judge reads them: a "
        f"sample is *confident* "
        f"when the judge gives some digit a probability of at least {CONFIDENT:g}.")
    runs = {name: common.shipped(name) for name in (spec_run, better_run)}
    if runs[better_run] is None:
        st.info(f"The better UNet is not shipped here (data/models/{better_run}.safetensors is missing): choose "
                "**Beyond the spec** above to train it, or train it with `scripts/train_models.py --model "
                f"{better_run}`.")
        return
    if runs[spec_run] is None:
        st.info(f"The spec's UNet is not shipped here (data/models/{spec_run}.safetensors is missing).")
        return
    c1, c2 = st.columns(2)
    n = int(c1.select_slider("Samples of each model", SAMPLE_COUNTS, DEFAULT_SAMPLES, key=f"{key}_judge_samples"))
    with c2:
        seed_entry = seed_control(f"{key}_judge_seed", feeds="Judge")
    by_words = {s.words: s for s in samplers}
    sampler = samplers[0]
    if len(samplers) > 1:
        sampler = by_words[st.radio("Sampler, for both", list(by_words), horizontal=True, key=f"{key}_judge_sampler")]
    st.caption(f"{counted(n, 'sample')} of each, {sampler.words}: {counted(2 * sampler.calls, 'batched UNet call')} "
               "for the two.")
    flag = f"{key}_judged"
    if not (st.button("Judge", key=f"{key}_judge", type="primary", disabled=not seed_entry.valid)
            or st.session_state.get(flag)):
        return
    st.session_state[flag] = True
    classifier, real = common.digit_judge()
    progress = StepProgress(2 * sampler.calls, "Sampling both models…")
    readings = {name: judged(run_cache_id(run, judged_weights(run)), f"judge-{id(classifier)}", n, seed_entry.value,
                             sampler.words, sampler.draw, run, classifier, progress) for name, run in runs.items()}
    progress.done()
    mnist = label_shares(common.mnist()[0].labels)
    spec, better = readings[spec_run], readings[better_run]
    (spec_gap, spec_digit), (better_gap, better_digit) = (largest_share_gap(torch.tensor(r.shares), mnist)
                                                          for r in (spec, better))
    st.markdown(
        f"The better UNet draws a confident digit in **{better.confident:.1%}** of its samples, the spec's in "
        f"**{spec.confident:.1%}** (real test digits: {real.confident:.1%}), both sampled with {sampler.words}. "
        f"Against MNIST's proportions, its digit shares are off by at most **{better_gap:.1f}** points "
        f"(the {better_digit}s), the spec's by **{spec_gap:.1f}** (the {spec_digit}s). Training took "
        f"{run_duration(runs[better_run])} on {runs[better_run].info.get('device', '?')} (the spec's: "
        f"{run_duration(runs[spec_run])} on {runs[spec_run].info.get('device', '?')}).")
    st.plotly_chart(digit_shares_figure({"the spec's UNet": spec.shares, "the better UNet": better.shares,
                                         "MNIST's training digits": mnist.tolist()}), key=f"{key}_shares")
    for column, (title, reading) in zip(layout.columns(2), (("The spec's UNet", spec), ("The better UNet", better))):
        layout.image(reading.picture, f"{title}: the first {SHOWN} samples · {reading.confident:.0%} of all "
                                      "confident", column)

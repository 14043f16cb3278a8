"""Section 1.8 · visual anagrams: one image that reads as prompt 1 as it is and as prompt 2 under a view v (the course
turns it upside down); the noise estimates of both views are averaged at every step."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import streamlit as st
import torch

from lib.techniques.anagram_gif import anagram_gif
from lib.media.costs import counts_cost
from lib.ddpm.sampling import sample_with
from lib.techniques.anagrams import AnagramStep, anagram_predictor
from lib.media.images import grid, signed_picture
from lib.media.report import gif_figure, png_figure
from lib.techniques.views import FAILURE_VIEWS, VIEWS, noise_variance
from lib.media.text import quoted_prompt
from ui.backend import Backend, StepProgress
from ui.part_a import SAMPLES_DEFAULT, show
from ui.report_kit import Context, Heading, Piece


@dataclass(frozen=True, kw_only=True)
class Example:
    """An anagram: prompt 1 as generated, prompt 2 after the view."""

    prompt1: str
    prompt2: str
    view: str


@dataclass(frozen=True, kw_only=True)
class Defaults:
    example: Example  # what the page opens on
    second: Example  # the report's "plus 2 more"
    # measured with the tests' digit classifier (bench/RESULTS.md, "A6 views on MNIST"): views with which this
    # model finds almost no anagram (the failure comparison then sets the example's view beside the broken one), and
    # views that work for only some pairs of prompts
    views_that_fail: tuple[str, ...] = ()
    views_for_some_pairs: tuple[str, ...] = ()
    weight: float = 0.5  # w of prompt 1


DEFAULTS = {
    "mnist": Defaults(example=Example(prompt1="6", prompt2="9", view="rotate 180°"),
                      second=Example(prompt1="2", prompt2="5", view="mirror left–right"),
                      views_that_fail=("pixel permutation",), views_for_some_pairs=("skew", "jigsaw (patch permutation)")),
    "if": Defaults(example=Example(prompt1="an oil painting of an old man",
                                   prompt2="an oil painting of people around a campfire", view="flip upside down"),
                   second=Example(prompt1="an oil painting of a snowy mountain village",
                                  prompt2="an oil painting of a horse", view="flip upside down")),
}


@dataclass(frozen=True, kw_only=True)
class Request:
    """Everything an anagram run depends on besides the model (the cache key of ``anagrams`` and ``morph_gif``)."""

    prompt1: str
    prompt2: str
    view: str
    weight: float
    scale: float
    num_samples: int
    stride: int
    seed: int


def request(example: Example, scale: float, stride: int, seed: int, *, weight: float = Defaults.weight,
            num_samples: int = SAMPLES_DEFAULT) -> Request:
    """The run of ``example`` at the page's defaults for the other settings."""
    return Request(prompt1=example.prompt1, prompt2=example.prompt2, view=example.view, weight=weight, scale=scale,
                   num_samples=num_samples, stride=stride, seed=seed)


ALL_VIEWS = {**VIEWS, **FAILURE_VIEWS}


def first_sample(step: AnagramStep) -> AnagramStep:
    """The step's record for the first image only, on the CPU: what the combining-rule picture shows."""
    def one(x):
        return x[:1].float().cpu()

    return AnagramStep(step.t, one(step.x), [one(v) for v in step.viewed], [one(e) for e in step.estimates],
                       [one(u) for u in step.unviewed], one(step.eps))


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def anagrams(cache_id: str, r: Request, _den, _on_step=None) -> tuple[torch.Tensor, list[AnagramStep]]:
    """(N, C, H, W) anagrams and every step's combining rule (first image); both views and both CFG halves go through
    the model in one batched call per step."""
    conds = [_den.encode_prompt(r.prompt1), _den.encode_prompt(r.prompt2)]
    steps = []
    predict = anagram_predictor(_den, conds, [VIEWS["identity"], ALL_VIEWS[r.view]], [r.weight, 1.0 - r.weight],
                                r.scale, record=lambda step: steps.append(first_sample(step)))
    gen = torch.Generator(device=_den.device).manual_seed(r.seed)
    result = sample_with(_den, predict, num_samples=r.num_samples, stride=r.stride, generator=gen, on_step=_on_step)
    return result.float().cpu(), steps


@st.cache_data(show_spinner=False, max_entries=8)
def morph_gif(cache_id: str, r: Request, _images: torch.Tensor) -> bytes:
    """The GIF turning the anagrams (keyed like ``anagrams``) into their view and back, about 112 px an image."""
    return anagram_gif(_images, VIEWS[r.view], ncols=r.num_samples, upscale=max(1, 112 // _images.shape[-1]))


VIEW_NAMES = [name for name in VIEWS if name != "identity"]


def view_help(family: str, patches: int) -> str:
    """The view selector's help: what each view does, and which of them fail on this family's model (measured)."""
    d = DEFAULTS[family]
    measured = ([f"{' and '.join(d.views_that_fail)} finds almost no anagram (no digit survives it)"]
                if d.views_that_fail else []) + ([f"{' and '.join(d.views_for_some_pairs)} work for only some pairs of digits"]
                            if d.views_for_some_pairs else [])
    return ("How to look at the image to see prompt 2. The course flips it upside down. Every view here is an exact "
            "permutation of the pixels (or −I): skew shears the rows with wrap-around, the jigsaw swaps "
            f"{patches}×{patches} patches, the inner circle turns a centred disc by 90°, the pixel permutation "
            "scrambles every pixel." + (f" Measured on this model: {'; '.join(measured)}." if measured else ""))


def failing_view_note(family: str, view: str) -> str | None:
    """What the page says when ``view`` finds no anagram on this family's model (measured), else None."""
    d = DEFAULTS[family]
    if view in d.views_that_fail:
        return (f"Measured on this model: {view} finds almost no anagram, whatever the prompts (no digit survives "
                f"it); {d.example.view} does.")
    return None


def comparison_view(family: str, view: str) -> str:
    """The working view the failure comparison samples beside a view that breaks: the page's view where it works on
    this model, else the example's (a view that fails here would set noise beside noise)."""
    d = DEFAULTS[family]
    return d.example.view if view in d.views_that_fail else view


COMBINING_PX = 120  # every panel of the combining rule's picture
DIFFERENCE_QUANTILE = 0.99  # the signed panels' one scale: this quantile of |difference| is full colour


def combining_rule(step: AnagramStep, prompts: list[str], views: list[str], weights: list[float]) -> list[np.ndarray]:
    """The one picture that explains the method, for the page's two views (the identity and v): what the model sees
    for each prompt (x_t, v(x_t)), each estimate in the image's own frame (ε̂₁, v⁻¹(ε̂₂)), their weighted mean ε — the
    estimate the sampler used at this step — and their difference, every panel at one size. The noise panels share
    one signed scale (``signed_picture``) set by the difference: the estimates are mostly the same noise, and only
    where they differ does a digit show. Returns the six pictures drawn."""
    (_, viewed), (first, back) = step.viewed, step.unviewed
    difference = first - back
    scale = max(float(difference.abs().flatten().quantile(DIFFERENCE_QUANTILE)), 1e-6)
    panels = [(step.x, False, f"x_t at t = {step.t}: the input for {quoted_prompt(prompts[0])}"),
              (viewed, False, f"v(x_t): x_t under {views[1]}, the input for {quoted_prompt(prompts[1])}"),
              (step.eps, True, f"ε = {weights[0]:.2f} ε̂₁ + {weights[1]:.2f} v⁻¹(ε̂₂): the step's estimate"),
              (first, True, f"ε̂₁: the estimate for {quoted_prompt(prompts[0])}"),
              (back, True, f"v⁻¹(ε̂₂): the estimate for {quoted_prompt(prompts[1])}, mapped back"),
              (difference, True, "ε̂₁ − v⁻¹(ε̂₂): where the prompts differ")]
    pictures = []
    for start in (0, 3):
        for column, (image, signed, caption) in zip(st.columns(3), panels[start:start + 3]):
            pictures.append(show(signed_picture(image, scale) if signed else image, container=column,
                                 target_px=COMBINING_PX, caption=caption))
    st.caption(f"Noise panels on one signed scale: orange +, blue −, full colour at ±{scale:.2f}. The two estimates "
               "look like the same noise; their difference draws both digits — blue where prompt 1 asks for more "
               "ink than prompt 2, orange where prompt 2 does — and ε carries both.")
    return pictures


# --- the report --------------------------------------------------------------------------------------------------------

FIRST = Heading("anagrams", "1.8", "Visual anagram")
SECOND = Heading("anagrams.2", "1.8", "Visual anagram, another pair")


def _anagram(c: Context, heading: Heading, example: Example):
    r = request(example, c.d.guidance, c.stride, c.seed)
    (result, _), cost = anagrams(c.backend.cache_id, r, c.den, c.progress)
    viewed = VIEWS[r.view].apply(result)
    figures = [png_figure(grid(torch.cat([result, viewed]), r.num_samples, upscale=c.upscale()),
                          f"top: as generated → {quoted_prompt(r.prompt1)}; bottom: {r.view} → "
                          f"{quoted_prompt(r.prompt2)}"),
               gif_figure(morph_gif(c.backend.cache_id, r, result), f"as generated ↔ {r.view}")]
    settings = {"prompt 1": quoted_prompt(r.prompt1), "prompt 2": quoted_prompt(r.prompt2), "view": r.view, "weight w": r.weight,
                "guidance γ": r.scale, "samples": r.num_samples, "stride": r.stride, "seed": r.seed}
    return [heading.made(settings, figures)], cost


REPORT = (
    Piece((FIRST,), "1.8 · anagram", Context.steps, lambda c: _anagram(c, FIRST, DEFAULTS[c.backend.family].example)),
    Piece((SECOND,), "1.8 · another anagram", Context.steps,
          lambda c: _anagram(c, SECOND, DEFAULTS[c.backend.family].second)),
)


def views_that_break(backend: Backend, r: Request, result: torch.Tensor, steps: int) -> None:
    """The page's last part: a view that is not a permutation (its noise variance against a working view's, measured),
    and on request the anagram sampled with it beside one with a view that works here (``comparison_view``)."""
    st.subheader("Views that break")
    failure = st.selectbox("A view that is not a permutation", list(FAILURE_VIEWS), key="anagrams_failure")
    working = comparison_view(backend.family, r.view)
    shape = (1, *backend.model.image_shape)
    st.info(f"{FAILURE_VIEWS[failure].breaks} Measured on N(0, I) noise: Var v(z) = "
            f"{noise_variance(FAILURE_VIEWS[failure], shape):.2f}, against {noise_variance(VIEWS[working], shape):.2f} "
            f"for {working}.")
    if working != r.view:
        st.caption(f"{r.view.capitalize()} does not work on this model (above): the comparison sets {working}, a view "
                   f"that does, beside {failure}.")
    if st.toggle(f"Sample the anagram with {failure} beside one with {working}", key="anagrams_broken",
                 help="Sampling runs with the same prompts, seed and weight."):
        progress = StepProgress(steps, f"Sampling with {failure}:")
        (broken, _), _ = anagrams(backend.cache_id, replace(r, view=failure), backend.model, progress)
        progress.done()
        works = result
        if working != r.view:
            progress = StepProgress(steps, f"Sampling with {working}:")
            (works, _), _ = anagrams(backend.cache_id, replace(r, view=working), backend.model, progress)
            progress.done()
        c1, c2 = st.columns(2)
        for container, name, images, viewed_images in (
                (c1, f"works: {working}", works, VIEWS[working].apply(works)),
                (c2, f"breaks: {failure}", broken, FAILURE_VIEWS[failure].apply(broken))):
            show(torch.cat([images, viewed_images]), ncols=r.num_samples, container=container, target_px=90,
                 caption=f"{name} · top as generated (asked: {quoted_prompt(r.prompt1)}), bottom viewed "
                         f"(asked: {quoted_prompt(r.prompt2)})")

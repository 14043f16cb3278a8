"""Section 0 · sampling with the stock pipeline: prompts × numbers of inference steps, from one seed.

On DeepFloyd IF this is diffusers' stock ``IFPipeline`` (columns: ``num_inference_steps``); on the MNIST model the
app's own loop (columns: strides through the T = 300 timesteps, fewer steps for larger strides).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.costs import counts_cost
from lib.media.images import grid
from lib.media.report import png_figure
from lib.ddpm.sampling import sample
from ui.backend import FAMILY_DEFAULTS, RECHECK_SECONDS
from ui.report_kit import Context, Heading, Piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    prompts: str  # one per line: the grid's rows
    columns: tuple[int, ...]  # strides (MNIST) or num_inference_steps (IF)
    options: tuple[int, ...]  # what the columns' multiselect offers


DEFAULTS = {
    "mnist": Defaults(prompts="3\nfive\na handwritten 8", columns=(100, 30, 10),
                      options=(150, 100, 50, 30, 10, 5, 3, 1)),
    "if": Defaults(prompts="an oil painting of a snowy mountain village\na man wearing a hat\na rocket ship",
                   columns=(5, 20, 50), options=(2, 5, 10, 20, 50)),
}


def steps_lesson(backend, columns: tuple[int, ...]) -> str:
    """What more steps change, worded from measurement. DeepFloyd IF's few-step images are rough and unfinished (the
    course's grid). The MNIST model's are not: the app's digit judge reads every default prompt as asked at every
    stride offered, 150 (2 steps) down to 1 (299), at seeds 180, 1 and 2 (walk of issue 27) — so the page must not
    promise rough digits there; it names the fewest steps shown instead."""
    if backend.is_if:
        return ("**What to look for**: the columns with few steps are rough and unfinished (blotches, missing detail); "
                "more steps complete them.")
    fewest = max(columns)
    steps = len(backend.model.timesteps(fewest)) - 1
    return (f"**What to look for**: on this small 28-px model even stride {fewest} ({steps} steps) already gives "
            "finished digits (the app's digit judge reads every default prompt as asked at every stride offered); "
            "more steps change the strokes' detail and shape, not whether the digit is done. Rough, unfinished "
            "few-step images are what the large DeepFloyd IF model shows.")


def prompt_lines(text: str) -> tuple[str, ...]:
    """The prompts of a text area, one per line; blank lines only separate them. An empty area is the one empty
    prompt, which is the unconditional one, as on every page (``lib.media.text.EMPTY_PROMPT_RULE``)."""
    return tuple(p.strip() for p in text.splitlines() if p.strip()) or ("",)


def ordered_columns(family: str, chosen) -> tuple[int, ...]:
    """The columns in display order: fewest steps first (IF: ascending step counts; MNIST: descending strides)."""
    return tuple(sorted(chosen, reverse=family != "if"))


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def mnist_grid(cache_id: str, prompts: tuple[str, ...], strides: tuple[int, ...], seed: int, _den,
               _on_step=None) -> torch.Tensor:
    """(len(strides), len(prompts), C, H, W): for each stride, all prompts in one batch from the same seed."""
    cond = torch.cat([_den.encode_prompt(p) for p in prompts])  # one condition row per image
    out = []
    for stride in strides:
        gen = torch.Generator(device=_den.device).manual_seed(seed)
        out.append(sample(_den, cond, scale=FAMILY_DEFAULTS["mnist"].guidance, stride=stride,
                          num_samples=len(prompts), generator=gen, on_step=_on_step).float().cpu())
    return torch.stack(out)


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def if_grid(cache_id: str, prompts: tuple[str, ...], steps: tuple[int, ...], seed: int, _den,
            _on_step=None) -> torch.Tensor:
    """(len(steps), len(prompts), 3, 64, 64) from the stock IFPipeline, re-seeded for every image; ``_on_step`` is a
    progress bar advanced once per pipeline call (the pipeline runs its own loop)."""
    out = []
    for n in steps:
        row = []
        for prompt in prompts:  # the stock pipeline takes one prompt (its own CFG batch) per call
            row.append(_den.stock_sample(prompt, steps=n, seed=seed, scale=FAMILY_DEFAULTS["if"].guidance).cpu())
            if _on_step is not None:
                _on_step.advance(f"{prompt[:30]!r}, {n} steps")
        out.append(torch.cat(row))
    return torch.stack(out)


def stock_grid(backend, prompts: tuple[str, ...], columns: tuple[int, ...], seed: int, progress):
    """The grid of either family (``mnist_grid`` or ``if_grid``) and its cost; with column labels."""
    den = backend.model
    if backend.is_if:
        result, cost = if_grid(backend.cache_id, prompts, columns, seed, den, progress)
        return result, cost, [f"{n} steps" for n in columns]
    result, cost = mnist_grid(backend.cache_id, prompts, columns, seed, den, progress)
    return result, cost, [f"stride {s} · {len(den.timesteps(s)) - 1} steps" for s in columns]


def grid_picture(result: torch.Tensor, num_columns: int):
    """The grid as one picture: a row per prompt, a column per step count."""
    return grid(result.transpose(0, 1).flatten(0, 1), num_columns, upscale=2)


def units(backend, prompts: tuple[str, ...], columns: tuple[int, ...]) -> int:
    """Progress units of one grid: pipeline calls (IF) or sampler steps (MNIST)."""
    if backend.is_if:
        return len(columns) * len(prompts)
    return sum(len(backend.model.timesteps(s)) - 1 for s in columns)


# --- stage 2 (IF): 64 → 256 px -------------------------------------------------------------------------------------------

@st.cache_data(ttl=RECHECK_SECONDS, show_spinner="Checking stage 2…")
def stage2_problem(variant: str, device: str, key: str, _src) -> str | None:
    """Why stage 2 cannot run here (licence, snapshot, room on the GPU), checked before anyone asks for it."""
    from lib.backends import if_hub

    return if_hub.stage2_memory_problem(variant, torch.device(device)) or if_hub.stage2_problem(_src)


@st.cache_resource(max_entries=1, show_spinner="Loading DeepFloyd IF stage 2 (64 → 256 px)…")
def stage2(variant: str, device: str, key: str, _src):
    from lib.backends.if_loading import load_stage2

    return load_stage2(variant, _src, torch.device(device))


@st.cache_data(show_spinner="Upscaling with stage 2…", max_entries=8)
def upscaled(cache_id: str, prompts: tuple[str, ...], steps: int, seed: int, _images: torch.Tensor, _den,
             _pipe) -> torch.Tensor:
    """Stage 2 on ``_images`` — the stage-1 results for (prompts, steps, seed), which is what keys the cache. A model
    server runs its own stage 2 (``_pipe`` is None)."""
    from lib.backends.deepfloyd import upscale

    cond = torch.cat([_den.encode_prompt(p) for p in prompts])
    if _pipe is None:
        return _den.upscale(_images, cond, _den.null_condition(), seed=seed, steps=20)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return upscale(_pipe, _images.to(_den.device), cond, _den.null_condition(), gen, steps=20).cpu()


# --- the report --------------------------------------------------------------------------------------------------------

GRID = Heading("stock", "0", "Sampling with the stock pipeline")


def _report_grid(c: Context):
    d = DEFAULTS[c.backend.family]
    prompts, columns = prompt_lines(d.prompts), ordered_columns(c.backend.family, d.columns)
    result, cost, labels = stock_grid(c.counted, prompts, columns, c.seed, c.progress)
    what = "num_inference_steps" if c.backend.is_if else "strides"
    settings = {"prompts (rows)": " · ".join(prompts), what + " (columns)": ", ".join(map(str, columns)),
                "guidance γ": c.d.guidance, "seed": c.seed}
    text = ("Each row a prompt, each column a number of steps, all from the same seed; stage 2 (256 px) is not part "
            "of the report." if c.backend.is_if else "Each row a prompt (a digit), each column a stride through the "
                                                    "T = 300 timesteps, all from the same seed.")
    figure = png_figure(grid_picture(result, len(columns)), "columns: " + " · ".join(labels))
    return [GRID.made(settings, [figure], text)], cost


REPORT = (
    Piece((GRID,), "0 · stock pipeline",
          lambda c: units(c.backend, prompt_lines(DEFAULTS[c.backend.family].prompts),
                          DEFAULTS[c.backend.family].columns), _report_grid),
)

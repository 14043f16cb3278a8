"""Sections 1.5 – 1.6 · sampling from pure noise, and classifier-free guidance: the same noise at several γ."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.costs import counts_cost
from lib.media.images import grid
from lib.media.report import png_figure
from lib.ddpm.sampling import sample
from lib.media.text import quoted_prompt
from ui.report_kit import Context, Heading, Piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    scales: tuple[float, ...] = (0.0, 1.0, 3.0, 5.0, 7.0)  # the columns: γ = 1 is 1.5's plain sampling
    options: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0)
    samples: int = 4  # per γ


DEFAULTS = Defaults()


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def guidance_sweep(cache_id: str, prompt: str, scales: tuple[float, ...], num_samples: int, stride: int, seed: int,
                   _den, _on_step=None) -> torch.Tensor:
    """(len(scales), N, C, H, W) samples; the generator is re-seeded per scale so every γ starts from the same x_T."""
    cond = _den.encode_prompt(prompt)
    out = []
    for scale in scales:
        gen = torch.Generator(device=_den.device).manual_seed(seed)
        out.append(sample(_den, cond, scale=scale, stride=stride, num_samples=num_samples, generator=gen,
                          on_step=_on_step).float().cpu())
    return torch.stack(out)


def diversity(result: torch.Tensor) -> list[float]:
    """How much the samples of each γ differ from each other: the per-pixel standard deviation across the batch,
    averaged over the pixels."""
    return [float(images.std(dim=0).mean()) for images in result]


# --- the report --------------------------------------------------------------------------------------------------------

PLAIN = Heading("guidance.plain", "1.5", "Sampling from pure noise")
GUIDED = Heading("guidance", "1.6", "Classifier-free guidance")


def _report(c: Context):
    d, scales, n = c.d, tuple(sorted(DEFAULTS.scales)), DEFAULTS.samples
    result, cost = guidance_sweep(c.backend.cache_id, d.prompt, scales, n, c.stride, c.seed, c.den, c.progress)
    base = {"prompt": quoted_prompt(d.prompt), "samples": n, "stride": c.stride, "seed": c.seed}
    plain = PLAIN.made({**base, "guidance": "none (γ = 1)"},
                       [png_figure(grid(result[scales.index(1.0)], n, upscale=c.upscale()), "γ = 1")])
    sweep = png_figure(grid(result.flatten(0, 1), n, upscale=c.upscale()),
                       "one row per γ: " + ", ".join(f"{g:g}" for g in scales) + " (the same noise in every row)")
    guided = GUIDED.made({**base, "guidance γ": d.guidance},
                         [png_figure(grid(result[scales.index(d.guidance)], n, upscale=c.upscale()),
                                     f"γ = {d.guidance:g}"), sweep])
    return [plain, guided], cost


REPORT = (Piece((PLAIN, GUIDED), "1.5 – 1.6 · sampling and CFG", lambda c: c.steps() * len(DEFAULTS.scales),
                _report),)

"""Section 1.7.2 · inpainting with RePaint: the ordinary sampler, with the known pixels put back at every step, and
RePaint's resampling (jumps back up the chain) on request."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.costs import counts_cost
from lib.techniques.inpainting import inpaint
from lib.media.images import grid
from lib.techniques.repaint import call_timesteps, feathered, resampling_path
from lib.media.report import png_figure
from lib.media.text import quoted_prompt
from ui.part_a import masked_view, preset_masks
from ui.report_kit import Context, Heading, Piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    samples: int = 4
    jump_length: int = 5  # j: steps down before each jump back
    jump_n_sample: int = 1  # r: passes over each stretch; 1 = plain RePaint (resampling is 3–4× the calls)
    feather: int = 0  # px; 0 = a hard mask


DEFAULTS = Defaults()


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def inpaint_samples(cache_id: str, image, mask, prompt: str, scale: float, num_samples: int, stride: int,
                    seed: int, jump_length: int, jump_n_sample: int, _den, _on_step=None) -> torch.Tensor:
    """``num_samples`` inpaintings of the same image and (soft) mask, in one batch: (N, C, H, W)."""
    x = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype).expand(num_samples, -1, -1, -1)
    m = torch.from_numpy(mask).to(_den.device, _den.dtype)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return inpaint(_den, x, m, cond=_den.encode_prompt(prompt), scale=scale, stride=stride, generator=gen,
                   jump_length=jump_length, jump_n_sample=jump_n_sample, on_step=_on_step).float().cpu()


# --- the report --------------------------------------------------------------------------------------------------------

INPAINTING = Heading("inpainting", "1.7.2", "Inpainting")


def _report(c: Context):
    d = c.d
    mask_name, mask = next(iter(preset_masks(c.backend).items()))
    p = DEFAULTS
    m = feathered(mask, p.feather)
    prompt = d.edit_prompt(c.picked.digit)
    result, cost = inpaint_samples(c.backend.cache_id, c.picked.array, m.numpy(), prompt, d.guidance,
                                          p.samples, c.stride, c.seed, p.jump_length, p.jump_n_sample,
                                          c.den, c.progress)
    x = c.picked.tensor()
    picture = grid(torch.cat([x, masked_view(x, m), result]), p.samples + 2, upscale=c.upscale())
    settings = {"image": c.picked.caption, "mask": mask_name, "prompt": quoted_prompt(prompt), "guidance γ": d.guidance,
                "samples": p.samples, "stride": c.stride, "jump_length j": p.jump_length,
                "jump_n_sample r": p.jump_n_sample, "seed": c.seed}
    return [INPAINTING.made(settings, [png_figure(picture, "original · region to regenerate · inpaintings")])], cost


def _units(c: Context) -> int:
    p = DEFAULTS
    return len(call_timesteps(c.den.timesteps(c.stride), resampling_path(c.steps(), p.jump_length,
                                                                         p.jump_n_sample)))


REPORT = (Piece((INPAINTING,), "1.7.2 · inpainting", _units, _report),)

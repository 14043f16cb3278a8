"""Sections 1.3 – 1.4 · one-step vs iterative denoising: noise an image to t = timesteps[i_start], then remove the
noise in one model call (x̂₀) or step by step along the strided timesteps."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.media.costs import counts_cost
from lib.techniques.filters import lowpass
from lib.media.images import gradient_energy, grid, psnr
from lib.media.plots import TrajectoryRecorder
from lib.media.report import png_figure
from lib.ddpm.sampling import cfg_predictor, denoise, noise_to, one_step_denoise
from lib.media.text import quoted_prompt
from ui.report_kit import Context, Heading, Piece


@dataclass(frozen=True, kw_only=True)
class Defaults:
    i_start: int = 10  # the course's: t = 690 with stride 30 on IF (clamped to the chain's length)
    every: int = 5  # 1.4: show every 5th step


DEFAULTS = Defaults()
# 1.3 – 1.4 denoise with the conditional estimate alone (the course's iterative_denoise); guidance comes with 1.5 – 1.6
NO_CFG = "the conditional estimate alone, no classifier-free guidance"


def clamped_i_start(num_timesteps_in_chain: int, i_start: int = DEFAULTS.i_start) -> int:
    """``i_start`` within a chain of that many timesteps (it must leave at least one step)."""
    return min(i_start, num_timesteps_in_chain - 2)


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def compare(cache_id: str, image, prompt: str, i_start: int, stride: int, every: int, kernel: int, sigma: float,
            seed: int, _den, _on_step=None):
    """x_t, its blur, the one-step x̂0, the iterative result, the trajectory frames and the PSNR of x̂0 per step."""
    x0 = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype)
    ts = _den.timesteps(stride)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    cond = _den.encode_prompt(prompt)
    x_t = noise_to(x0, ts[i_start], _den.schedule, gen)
    one = one_step_denoise(_den, x_t, ts[i_start], cond)
    recorder = TrajectoryRecorder(len(ts) - 1, every, ncols=2, upscale=max(1, 128 // x0.shape[-1]))
    curve = []

    def on_step(i, t_prev, x, x0_hat):
        recorder(i, t_prev, torch.cat([x, x0_hat]), x0_hat)
        curve.append((i + 1, t_prev, psnr(x0_hat.clamp(-1, 1), x0)))
        if _on_step is not None:
            _on_step(i, t_prev, x, x0_hat)

    # the course's iterative_denoise of 1.4: the conditional estimate alone (NO_CFG); CFG comes in with 1.5 – 1.6
    final = denoise(x_t, ts, cfg_predictor(_den, cond, _den.null_condition(), 1.0), _den.schedule, gen,
                    variance_type=_den.variance_type, i_start=i_start, on_step=on_step)
    images = torch.cat([x0, x_t, lowpass(x_t, kernel, sigma), one, final]).clamp(-1, 1).float().cpu()  # as displayed
    return images, recorder.x_frames, recorder.labels, curve


WHY_PSNR_PREFERS_BLUR = (
    "Why the two scores disagree: one-step x̂₀ is the model's estimate of the *mean* of all originals that could lie "
    "under the noise. The mean has the smallest expected squared error, so it usually wins on PSNR, but averaging many "
    "digits blurs their edges. The iterative loop commits, step by step, to one plausible sharp image, which need not "
    "match the original stroke for stroke: sharper, yet often a little lower in PSNR."
)


def relation(a: float, b: float) -> str:
    """How ``a`` compares with ``b`` in words, for numbers already rounded as shown (so the words match them)."""
    return "above" if a > b else "below" if a < b else "equal to"


def edges(image: torch.Tensor, x0: torch.Tensor) -> float:
    """The image's edge energy as a fraction of the original's (a blank original counts as a tiny one)."""
    return gradient_energy(image) / max(gradient_energy(x0), 1e-8)


def scores_line(images: torch.Tensor, x0: torch.Tensor) -> str:
    """PSNR and edge energy (relative to the original's) of one-step (images[3]) vs iterative (images[4])."""
    p_one, p_iter = (round(psnr(images[i], x0), 1) for i in (3, 4))
    e_one, e_iter = (round(100 * edges(images[i], x0)) for i in (3, 4))
    return (f"**PSNR**: one-step {p_one:.1f} dB, {relation(p_one, p_iter)} iterative {p_iter:.1f} dB. "
            f"**Edge energy** (mean squared difference of neighbouring pixels; the original's = 100 %): "
            f"one-step {e_one} %, {relation(e_one, e_iter)} iterative {e_iter} %.")


# --- the report --------------------------------------------------------------------------------------------------------

ITERATIVE = Heading("iterative", "1.4", "Iterative denoising, every 5th step")


def _report(c: Context):
    d, ts = c.d, c.den.timesteps(c.stride)
    i_start = clamped_i_start(len(ts))
    prompt = d.edit_prompt(c.picked.digit)
    (images, frames, labels, _), cost = compare(c.backend.cache_id, c.picked.array, prompt, i_start, c.stride,
                                                DEFAULTS.every, d.blur_kernel, d.blur_sigma, c.seed, c.den, c.progress)
    figures = [png_figure(frame, label) for frame, label in zip(frames, labels)]
    figures.append(png_figure(grid(images, 5, upscale=c.upscale()),
                              "original · noisy · Gaussian blur · one-step x̂₀ · iterative"))
    settings = {"image": c.picked.caption, "prompt": quoted_prompt(prompt), "i_start": f"{i_start} (t = {ts[i_start]})",
                "stride": c.stride, "every": f"{DEFAULTS.every}th step",
                "blur": f"kernel {d.blur_kernel}, σ {d.blur_sigma:g}", "guidance": NO_CFG,
                "seed": c.seed}
    text = "Each frame: x_t (left) and that step's x̂₀ (right); last: the final result beside one-step and blur."
    return [ITERATIVE.made(settings, figures, text)], cost


REPORT = (Piece((ITERATIVE,), "1.4 · iterative denoising",
                lambda c: c.steps() - clamped_i_start(len(c.den.timesteps(c.stride))), _report),)

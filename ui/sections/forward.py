"""Sections 1.1 – 1.2 · the forward process and classical (blur) denoising; the report adds 1.3's one-step estimates
of the same noisy images (the course's row at t = 250, 500, 750 of T = 1000)."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lib.media.costs import counts_cost
from lib.ddpm.diffusion import forward_noise
from lib.techniques.filters import lowpass
from lib.media.images import grid
from lib.media.report import png_figure
from lib.ddpm.sampling import one_step_denoise, randn
from lib.media.text import quoted_prompt
from ui.report_kit import Context, Heading, Piece, one


def default_t(num_timesteps: int) -> int:
    """The t slider's start: a quarter of the way into the chain, where the image is still recognisable."""
    return num_timesteps // 4


def course_timesteps(num_timesteps: int) -> tuple[int, int, int]:
    """The course's t = 250, 500, 750 of T = 1000, as the same fractions of another T."""
    T = num_timesteps
    return T // 4, T // 2, 3 * T // 4


def _noised(image: np.ndarray, ts: tuple[int, ...], seed: int, schedule) -> torch.Tensor:
    """x_t for each t: one ε ~ N(0, I) from ``seed``, shared by all t; (len(ts), C, H, W)."""
    x0 = torch.from_numpy(image).unsqueeze(0)
    eps = randn(x0.shape, torch.Generator().manual_seed(seed), like=x0)
    return torch.cat([forward_noise(x0, t, schedule, eps) for t in ts])


@st.cache_data(show_spinner=False, max_entries=64)
def noisy_and_blurred(cache_id: str, image, ts: tuple[int, ...], kernel: int, sigma: float, seed: int, _den):
    """x_t for each t (one ε ~ N(0, I) from ``seed``, shared by all t) and its Gaussian blur; both
    (len(ts), C, H, W)."""
    noisy = _noised(image, ts, seed, _den.schedule)
    return noisy, lowpass(noisy, kernel, sigma)


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def one_step_row(cache_id: str, image, ts: tuple[int, ...], prompt: str, seed: int, _den) -> torch.Tensor:
    """Spec 1.3: the one-step estimate x̂₀ of each x_t of ``noisy_and_blurred`` (the same ε from ``seed``), one UNet
    call per t, conditioned on ``prompt`` without guidance; (len(ts), C, H, W) in [−1, 1]."""
    noisy = _noised(image, ts, seed, _den.schedule).to(_den.device, _den.dtype)
    cond = _den.encode_prompt(prompt)
    return torch.cat([one_step_denoise(_den, noisy[i:i + 1], t, cond) for i, t in enumerate(ts)]
                     ).clamp(-1, 1).float().cpu()


def noised_rows(backend, image, t: int, kernel: int, sigma: float, seed: int):
    """x_t and its blur at the page's t followed by the course's three timesteps: one ``noisy_and_blurred`` entry,
    which the report shares when t is the page's default (``default_t``)."""
    return noisy_and_blurred(backend.cache_id, image, (t, *course_timesteps(backend.num_timesteps)), kernel, sigma, seed,
                             backend.model)


# --- the report --------------------------------------------------------------------------------------------------------

FORWARD = Heading("forward", "1.1", "The forward process")
BLUR_VS_ONE_STEP = Heading("forward.denoised", "1.2 – 1.3", "Classical (blur) vs one-step denoising")


def _report(c: Context):
    T, d, image = c.backend.num_timesteps, c.d, c.picked.array
    course_ts = course_timesteps(T)
    noisy, blurred = noised_rows(c.counted, image, default_t(T), d.blur_kernel, d.blur_sigma, c.seed)
    prompt = d.edit_prompt(c.picked.digit)
    one_step, cost = one_step_row(c.backend.cache_id, image, course_ts, prompt, c.seed, c.den)
    ts_text = ", ".join(f"t = {t}" for t in course_ts)
    base = {"image": c.picked.caption, "timesteps": ts_text, "noise seed": c.seed}
    forward = FORWARD.made(base, [png_figure(grid(torch.cat([c.picked.tensor(), noisy[1:]]), 4, upscale=c.upscale()),
                                             f"original · {ts_text}")],
                           "" if T == 1000 else f"T = {T}: the same fractions of T as the course's 250 / 500 / 750.",
                           title=f"{FORWARD.title} at {ts_text}")
    rows = torch.cat([noisy[1:], blurred[1:], one_step])
    settings = {**base, "blur kernel": d.blur_kernel, "blur σ": d.blur_sigma, "prompt": quoted_prompt(prompt),
                "guidance": "none (one conditional UNet call per t)"}
    denoised = BLUR_VS_ONE_STEP.made(settings, [png_figure(grid(rows, 3, upscale=c.upscale()),
                                                           "rows: noisy x_t · Gaussian blur · one-step x̂₀; columns: "
                                                           + ts_text)])
    return [forward, denoised], cost


REPORT = (Piece((FORWARD, BLUR_VS_ONE_STEP), "1.1 – 1.3 · forward process, blur, one step", one, _report),)

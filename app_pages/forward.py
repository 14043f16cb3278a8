"""1.1 – 1.2 · The forward process and classical denoising."""

import streamlit as st
import torch

from lib.media.images import grid, psnr
from lib.media.plots import MARK_COLOR, schedule_figure
from lib.media.text import quoted_prompt
from ui.backend import seed_control
from ui.layout import download_png
from ui.part_a import page_setup, pick_image, show
from ui.sections.forward import course_timesteps, default_t, one_step_row, noised_rows

backend = page_setup(
    "forward",
    [r"q(x_t \mid x_0) = \mathcal{N}\!\left(\sqrt{\bar\alpha_t}\,x_0,\;(1-\bar\alpha_t)\,I\right)"
     r"\quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,"
     r"\quad \varepsilon \sim \mathcal{N}(0, I)",
     r"\bar\alpha_t = \prod_{s \le t} (1 - \beta_s), \qquad \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}"],
    "The forward process destroys an image step by step: it **scales the image down** by √ᾱ_t and **adds Gaussian "
    "noise** of variance 1 − ᾱ_t. At t = 0 the image is almost clean, at t = T − 1 it is almost pure noise. The "
    "classical way to remove noise is to blur it away (a Gaussian low-pass filter): that works a little at low noise "
    "but at high noise the blur keeps the noise's blobs and wipes the image's detail too — which is why we need a "
    "learned denoiser.",
)

T = backend.num_timesteps


left, right = st.columns([2, 3])
with left:
    picked = pick_image(backend, "forward")
with right:
    t = st.slider("Timestep t", 0, T - 1, default_t(T), key=f"forward_t_{backend.family}",
                  help=f"0 = barely noisy, {T - 1} = almost pure noise (T = {T}).")
    c1, c2, c3 = st.columns(3)
    kernel = c1.slider("Blur kernel size", 3, 33, backend.defaults.blur_kernel, step=2, key="forward_kernel")
    sigma = c2.slider("Blur σ", 0.1, 5.0, backend.defaults.blur_sigma, step=0.1, key=f"forward_sigma_{backend.family}")
    with c3:
        seed = seed_control("forward_seed").value

if picked is not None:
    x0 = picked.tensor()
    course_ts = course_timesteps(T)  # the course's 250 / 500 / 750 for T = 1000
    noisy, blurred = noised_rows(backend, picked.array, t, kernel, sigma, seed)
    abar = backend.model.schedule.abar(t)
    st.subheader(f"At t = {t}")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("ᾱ_t", f"{abar:.4f}")
    m2.metric("signal scale √ᾱ_t", f"{abar ** 0.5:.3f}")
    m3.metric("PSNR of x_t", f"{psnr(noisy[:1], x0):.1f} dB")
    m4.metric("PSNR of its blur", f"{psnr(blurred[:1], x0):.1f} dB")
    cols = st.columns(3)
    show(x0, container=cols[0], caption=f"original x₀ ({picked.caption})")
    show(noisy[:1], container=cols[1], caption=f"noisy x_{t}")
    show(blurred[:1], container=cols[2], caption=f"Gaussian blur (kernel {kernel}, σ {sigma:g})")

    fig = schedule_figure(backend.model.schedule, height=280)
    fig.add_vline(x=t, line=dict(color=MARK_COLOR, dash="dash"), row="all", col="all")
    st.plotly_chart(fig)

    st.subheader("The course's row: " + ", ".join(f"t = {s}" for s in course_ts))
    prompt = backend.defaults.edit_prompt(picked.digit)
    one_step, _ = one_step_row(backend.cache_id, picked.array, course_ts, prompt, seed, backend.model)
    st.caption("Top: x_t; middle: its Gaussian blur (1.2); bottom: the UNet's one-step estimate x̂₀ for the prompt "
               f"{quoted_prompt(prompt)} (1.3, from the same x_t). " + (
        "(T = 1000, as in the course.)" if T == 1000 else f"(Here T = {T}, so these are the same fractions of T as "
        "the course's 250 / 500 / 750 of 1000.)"))
    row = torch.cat([noisy[1:], blurred[1:], one_step])
    show(row, ncols=len(course_ts), target_px=150)
    download_png(grid(torch.cat([x0, noisy[:1], blurred[:1]]), 3, upscale=4), f"forward_t{t}.png",
                 f"Download original / x_{t} / blur")

"""A2 · One-step vs iterative denoising (spec 1.3 and 1.4)."""

import streamlit as st
import torch

from lib.images import gradient_energy, grid, psnr
from lib.plots import animation_figure, estimate_psnr_figure
from ui import layout
from ui.backend import StepProgress, download_png, prompt_ok, seed_control, stride_control
from ui.common import counted
from ui.part_a import (EMPTY_PROMPT_HELP, clamped_key, cost_caption, page_setup, pick_image, prompt_input, show,
                       with_cfg)
from ui.pieces import compare

backend = page_setup(
    "iterative",
    [r"\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}",
     r"x_{t'} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta_t}{1-\bar\alpha_t}\,\hat x_0"
     r" + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\,x_t + v_\sigma,"
     r"\qquad \alpha_t = \frac{\bar\alpha_t}{\bar\alpha_{t'}},\; \beta_t = 1 - \alpha_t"],
    "Noise an image to timestep t = timesteps[i_start], then remove the noise with the model. **One step** asks the "
    "model for the noise once and solves the forward formula for x₀: fine at low noise, blurry at high noise (it "
    "predicts the *average* of all images that could be under the noise). **Iteratively**, each step only moves from "
    "t to the next, smaller t' of the strided list, mixing the current estimate x̂₀ with x_t and adding a little fresh "
    "noise v_σ — so later steps can fix what earlier ones got wrong. PSNR (higher = closer to the original) and edge "
    "energy (sharpness) score each result.",
)


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


left, right = st.columns([2, 3])
with left:
    picked = pick_image(backend, "a2")
with right:
    c1, c2 = st.columns(2)
    with c1:
        stride = stride_control(backend, key="a2_stride")
    ts = backend.denoiser.timesteps(stride)
    i_start = c2.slider("i_start (where the loop starts)", 0, len(ts) - 2, min(10, len(ts) - 2),
                        key=clamped_key(f"a2_istart_{backend.kind}", len(ts) - 2),
                        help="Index into the strided timesteps: the image is noised to t = timesteps[i_start]. "
                             "The course uses i_start = 10 (t = 690 with stride 30 on IF).")
    st.caption(f"t = timesteps[{i_start}] = **{ts[i_start]}** · {counted(len(ts) - 1 - i_start, 'denoising step')} from there.")
    c3, c4, c5 = st.columns(3)
    every = c3.slider("Show every k-th step", 1, 10, 5, key="a2_every")
    kernel = c4.slider("Blur kernel size", 3, 15, 5, step=2, key="a2_kernel")
    sigma = c5.slider("Blur σ", 0.1, 5.0, backend.defaults.blur_sigma, step=0.1, key=f"a2_sigma_{backend.kind}")
    default_prompt = backend.defaults.edit_prompt(None if picked is None else picked.digit)
    prompt = prompt_input("Prompt", default_prompt, "a2_prompt", backend.kind,
                          help="IF: the course's \"a high quality photo\". MNIST: the digit. " + EMPTY_PROMPT_HELP)
    seed = seed_control("a2_seed")

if picked is not None and prompt_ok(backend, prompt):
    progress = StepProgress(len(ts) - 1 - i_start, "Denoising:")
    (images, frames, labels, curve), cost = compare(backend.key, picked.array, prompt, i_start, stride, every, kernel,
                                                    sigma, seed, backend.denoiser, progress)
    progress.done()
    x0 = images[:1]
    names = ["original", f"noisy (t = {ts[i_start]})", "Gaussian blur", "one-step x̂₀", "iterative"]
    cols = layout.columns(5)
    for col, name, image in zip(cols, names, images):
        score = "" if name == "original" else f" · {psnr(image, x0):.1f} dB · edges {100 * edges(image, x0):.0f} %"
        show(image, container=col, caption=name + score, target_px=140)
    st.markdown(scores_line(images, x0))
    cost_caption(cost, f"1 image per call: the one-step estimate's call and "
                       f"{counted(len(ts) - 1 - i_start, 'iterative step')}{with_cfg(cost, cost.calls)}", progress)
    st.markdown(WHY_PSNR_PREFERS_BLUR)

    st.subheader("The iterative loop, every k-th step")
    st.caption("Each frame: the current x_t' (left) and that step's clean-image estimate x̂₀ (right).")
    st.plotly_chart(animation_figure(frames, labels))
    st.plotly_chart(estimate_psnr_figure(curve, {"one-step": psnr(images[3], x0), "blur": psnr(images[2], x0)}))
    download_png(grid(images, 5, upscale=max(1, 128 // backend.size)), f"denoise_istart{i_start}_seed{seed}.png",
                 "Download the comparison")

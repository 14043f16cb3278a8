"""1.3 – 1.4 · One-step vs iterative denoising."""

import streamlit as st

from lib.media.images import grid, psnr
from lib.media.plots import animation_figure, estimate_psnr_figure
from ui import layout
from ui.backend import StepProgress, prompt_ok, seed_control, stride_control
from ui.layout import download_png
from ui.common import counted
from ui.part_a import clamped_key, cost_caption, edit_prompt_input, image_and_controls, page_setup, show
from ui.sections.iterative import DEFAULTS, NO_CFG, WHY_PSNR_PREFERS_BLUR, clamped_i_start, compare, edges, scores_line

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


picked, right = image_and_controls(backend, "iterative")
with right:
    c1, c2 = st.columns(2)
    with c1:
        stride = stride_control(backend, key="iterative_stride")
    ts = backend.model.timesteps(stride)
    i_start = c2.slider("i_start (where the loop starts)", 0, len(ts) - 2, clamped_i_start(len(ts)),
                        key=clamped_key(f"iterative_istart_{backend.family}", len(ts) - 2),
                        help="Index into the strided timesteps: the image is noised to t = timesteps[i_start]. "
                             "The course uses i_start = 10 (t = 690 with stride 30 on IF).")
    st.caption(f"t = timesteps[{i_start}] = **{ts[i_start]}** · {counted(len(ts) - 1 - i_start, 'denoising step')} from there.")
    c3, c4, c5 = st.columns(3)
    every = c3.slider("Show every k-th step", 1, 10, DEFAULTS.every, key="iterative_every")
    kernel = c4.slider("Blur kernel size", 3, 15, backend.defaults.blur_kernel, step=2, key="iterative_kernel")
    sigma = c5.slider("Blur σ", 0.1, 5.0, backend.defaults.blur_sigma, step=0.1,
                      key=f"iterative_sigma_{backend.family}")
    prompt = edit_prompt_input(backend, picked, "iterative", "IF: the course's \"a high quality photo\". MNIST: the digit.")
    seed = seed_control("iterative_seed").value

if picked is not None and prompt_ok(backend, prompt):
    progress = StepProgress(len(ts) - 1 - i_start, "Denoising:")
    (images, frames, labels, curve), cost = compare(backend.cache_id, picked.array, prompt, i_start, stride, every, kernel,
                                                    sigma, seed, backend.model, progress)
    progress.done()
    x0 = images[:1]
    names = ["original", f"noisy (t = {ts[i_start]})", "Gaussian blur", "one-step x̂₀", "iterative"]
    cols = layout.columns(5)
    for col, name, image in zip(cols, names, images):
        score = "" if name == "original" else f" · {psnr(image, x0):.1f} dB · edges {100 * edges(image, x0):.0f} %"
        show(image, container=col, caption=name + score, target_px=140)
    st.markdown(scores_line(images, x0))
    cost_caption(cost, f"1 image per call: the one-step estimate's call and "
                       f"{counted(len(ts) - 1 - i_start, 'iterative step')}; {NO_CFG}", progress)
    st.markdown(WHY_PSNR_PREFERS_BLUR)

    st.subheader("The iterative loop, every k-th step")
    st.caption("Each frame: the current x_t' (left) and that step's clean-image estimate x̂₀ (right).")
    st.plotly_chart(animation_figure(frames, labels))
    st.plotly_chart(estimate_psnr_figure(curve, {"one-step": psnr(images[3], x0), "blur": psnr(images[2], x0)}))
    download_png(grid(images, 5, upscale=max(1, 128 // backend.size)), f"denoise_istart{i_start}_seed{seed}.png",
                 "Download the comparison")

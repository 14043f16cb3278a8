"""0 · Sampling with the stock pipeline: prompts × number of inference steps."""

import streamlit as st

from lib.media.images import grid
from lib.media.text import quoted_prompt
from ui import layout
from ui.backend import StepProgress, if_source, prompt_ok, seed_control, source_key
from ui.layout import download_png
from ui.part_a import cost_caption, page_setup, show, with_cfg
from ui.sections.stock import (DEFAULTS, grid_picture, ordered_columns, prompt_lines, stage2, stage2_problem,
                               steps_lesson, stock_grid, units, upscaled)

backend = page_setup(
    "stock",
    r"x_T \sim \mathcal{N}(0, I) \;\xrightarrow{\;\varepsilon_\theta(x_t,\,t,\,\text{prompt})\;}\; x_{t_1}"
    r" \rightarrow \dots \rightarrow x_0, \qquad \text{steps} = |\{t_0 > t_1 > \dots > t_K\}| - 1",
    "A diffusion model turns pure noise into an image by repeatedly predicting the noise in it and removing a bit. "
    "The **number of inference steps** is how many of those denoising steps it takes: few steps skip large parts of "
    "the noise schedule, more steps follow it closely (what that does to the images is said under the grid). Each "
    "row is a prompt, each "
    "column a step count, all from the same seed. On DeepFloyd IF this is diffusers' stock `IFPipeline` (stage 1 at "
    "64 px, then optionally stage 2 to 256 px); on the built-in MNIST model it is the same idea with the app's own "
    "loop, where fewer steps means a larger stride through the T = 300 timesteps.",
)
d = DEFAULTS[backend.family]
c1, c2 = st.columns([3, 2])
text = c1.text_area("Prompts (one per line)", d.prompts, key=f"stock_prompts_{backend.family}", height=110,
                    help="MNIST: one digit per line (\"7\", \"seven\", \"a handwritten 7\"). IF: any text.")
with c2:
    label = "num_inference_steps" if backend.is_if else "Strides (steps = number of timesteps − 1)"
    columns = st.multiselect(label, d.options, default=list(d.columns), key=f"stock_columns_{backend.family}",
                             help=None if backend.is_if else "Stride s visits t = 299, 299 − s, …, then the clean "
                                                             "image: about 300 / s steps.")
    seed = seed_control("stock_seed").value

prompts = prompt_lines(text)
if len(prompts) > 8:
    st.error(f"{len(prompts)} prompts: at most 8, please (each is a row of the grid).")
elif not columns:
    st.error("Pick at least one " + ("number of inference steps." if backend.is_if else "stride."))
elif all(prompt_ok(backend, p) for p in prompts):
    columns = ordered_columns(backend.family, columns)
    progress = StepProgress(units(backend, prompts, columns),
                            "Running the IF pipeline:" if backend.is_if else "Sampling:")
    result, cost, labels = stock_grid(backend, prompts, columns, seed, progress)
    progress.done()
    rows_why = (f"1 prompt per pipeline call{with_cfg(cost, cost.calls)}; counted from the stock pipeline's steps, one "
                "UNet call each (it runs its UNet itself); the time per call is its whole time per step; stage 2 is "
                "not counted" if backend.is_if else
                f"{len(prompts)} prompts per call{with_cfg(cost, cost.calls * len(prompts))}")
    st.caption(f"Guidance scale γ = {backend.defaults.guidance:g} · seed {seed}. Rows: " + " · ".join(map(quoted_prompt, prompts)))
    cost_caption(cost, rows_why, progress)
    st.markdown(steps_lesson(backend, columns))
    for col, label, images in zip(layout.columns(len(columns)), labels, result):
        col.markdown(f"**{label}**")
        show(images, ncols=1, container=col, target_px=140)
    download_png(grid_picture(result, len(columns)), f"stock_{backend.family}_seed{seed}.png", "Download the grid")

    if backend.is_if:
        st.subheader("Stage 2: 64 → 256 px")
        st.markdown("IF's second stage is a separate diffusion model that upsamples ×4, conditioned on the same "
                    "prompt; it runs on the images of the column with the most steps.")
        den = backend.model
        remote = hasattr(den, "upscale")  # a model server holds its own stage 2
        src, device = if_source(), str(den.device)
        problem = None if remote else stage2_problem(backend.variant, device, source_key(src), src)
        if problem:
            st.info(f"Stage 2 is not available here: {problem}")
        elif st.toggle("Upscale with stage 2", key="stock_upscale"):
            from lib.backends.if_hub import IFUnavailable

            try:
                pipe = None if remote else stage2(backend.variant, device, source_key(src), src)
                big = upscaled(backend.cache_id, prompts, columns[-1], seed, result[-1], den, pipe)
            except IFUnavailable as err:
                st.error(str(err))
            else:
                show(big, ncols=len(prompts), target_px=256)
                download_png(grid(big, len(prompts)), f"stage2_seed{seed}.png", "Download 256 px", key="stock_dl256")

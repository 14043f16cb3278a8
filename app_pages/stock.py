"""A0 · Sampling with the stock pipeline (spec part 0): prompts × number of inference steps."""

import streamlit as st
import torch

from lib.images import grid
from ui import layout
from ui.backend import StepProgress, download_png, if_source, prompt_ok, seed_control, source_key
from ui.part_a import cost_caption, page_setup, show, with_cfg
from ui.pieces import A0_DEFAULT_COLUMNS, A0_IF_STEPS, A0_MNIST_STRIDES, a0_columns, if_grid, mnist_grid

backend = page_setup(
    "stock",
    r"x_T \sim \mathcal{N}(0, I) \;\xrightarrow{\;\varepsilon_\theta(x_t,\,t,\,\text{prompt})\;}\; x_{t_1}"
    r" \rightarrow \dots \rightarrow x_0, \qquad \text{steps} = |\{t_0 > t_1 > \dots > t_K\}| - 1",
    "A diffusion model turns pure noise into an image by repeatedly predicting the noise in it and removing a bit. "
    "The **number of inference steps** is how many of those denoising steps it takes: few steps skip large parts of "
    "the noise schedule and give rough, unfinished images; more steps give complete ones. Each row is a prompt, each "
    "column a step count, all from the same seed. On DeepFloyd IF this is diffusers' stock `IFPipeline` (stage 1 at "
    "64 px, then optionally stage 2 to 256 px); on the built-in MNIST model it is the same idea with the app's own "
    "loop, where fewer steps means a larger stride through the T = 300 timesteps.",
)

@st.cache_data(ttl=300, show_spinner="Checking stage 2…")
def stage2_problem(variant: str, device: str, key: str, _src) -> str | None:
    """Why stage 2 cannot run here (licence, snapshot, room on the GPU), checked before anyone asks for it."""
    from lib import if_hub

    return if_hub.stage2_memory_problem(variant, torch.device(device)) or if_hub.stage2_problem(_src)


@st.cache_resource(max_entries=1, show_spinner="Loading DeepFloyd IF stage 2 (64 → 256 px)…")
def stage2(variant: str, device: str, key: str, _src):
    from lib.if_loading import load_stage2

    return load_stage2(variant, _src, torch.device(device))


@st.cache_data(show_spinner="Upscaling with stage 2…", max_entries=8)
def upscaled(backend_key: str, prompts: tuple[str, ...], steps: int, seed: int, _images: torch.Tensor, _den,
             _pipe) -> torch.Tensor:
    """Stage 2 on ``_images`` — the stage-1 results for (prompts, steps, seed), which is what keys the cache. A model
    server runs its own stage 2 (``_pipe`` is None)."""
    from lib.deepfloyd import upscale

    cond = torch.cat([_den.encode_prompt(p) for p in prompts])
    if _pipe is None:
        return _den.upscale(_images, cond, _den.null_condition(), seed=seed, steps=20)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return upscale(_pipe, _images.to(_den.device), cond, _den.null_condition(), gen, steps=20).cpu()


default_prompts = backend.defaults.stock_prompts
c1, c2 = st.columns([3, 2])
text = c1.text_area("Prompts (one per line)", default_prompts, key=f"a0_prompts_{backend.kind}", height=110,
                    help="MNIST: one digit per line (\"7\", \"seven\", \"a handwritten 7\"). IF: any text.")
with c2:
    if backend.is_if:
        columns = st.multiselect("num_inference_steps", A0_IF_STEPS, default=list(A0_DEFAULT_COLUMNS["if"]),
                                 key="a0_steps_if")
    else:
        columns = st.multiselect("Strides (steps = number of timesteps − 1)", A0_MNIST_STRIDES,
                                 default=list(A0_DEFAULT_COLUMNS["mnist"]),
                                 key="a0_strides_mnist",
                                 help="Stride s visits t = 299, 299 − s, …, then the clean image: about 300 / s steps.")
    seed = seed_control("a0_seed")

prompts = tuple(p.strip() for p in text.splitlines() if p.strip())
if not prompts:
    st.error("Enter at least one prompt (one per line).")
elif len(prompts) > 8:
    st.error(f"{len(prompts)} prompts: at most 8, please (each is a row of the grid).")
elif not columns:
    st.error("Pick at least one " + ("number of inference steps." if backend.is_if else "stride."))
elif all(prompt_ok(backend, p) for p in prompts):
    den = backend.denoiser
    if backend.is_if:
        columns = list(a0_columns(backend.kind, columns))
        progress = StepProgress(len(columns) * len(prompts), "Running the IF pipeline:")
        result, cost = if_grid(backend.key, prompts, tuple(columns), seed, den, progress)
        rows_why = (f"1 prompt per pipeline call{with_cfg(cost, cost.calls)}; counted from the stock pipeline's "
                    "steps, one UNet call each (it runs its UNet itself); the time per call is its whole time per "
                    "step; stage 2 is not counted")
        labels = [f"{n} steps" for n in columns]
    else:
        columns = list(a0_columns(backend.kind, columns))  # fewest steps first
        counts = [len(den.timesteps(s)) - 1 for s in columns]
        progress = StepProgress(sum(counts), "Sampling:")
        result, cost = mnist_grid(backend.key, prompts, tuple(columns), seed, den, progress)
        rows_why = f"{len(prompts)} prompts per call{with_cfg(cost, cost.calls * len(prompts))}"
        labels = [f"stride {s} · {n} steps" for s, n in zip(columns, counts)]
    progress.done()
    st.caption(f"Guidance scale γ = {backend.defaults.guidance:g} · seed {seed}. Rows: " + " · ".join(prompts))
    cost_caption(cost, rows_why, progress)
    cols = layout.columns(len(columns))
    for col, label, images in zip(cols, labels, result):
        col.markdown(f"**{label}**")
        show(images, ncols=1, container=col, target_px=140)
    picture = grid(result.transpose(0, 1).flatten(0, 1), len(columns), upscale=2)
    download_png(picture, f"stock_{backend.kind}_seed{seed}.png", "Download the grid")

    if backend.is_if:
        st.subheader("Stage 2: 64 → 256 px")
        st.markdown("IF's second stage is a separate diffusion model that upsamples ×4, conditioned on the same "
                    "prompt; it runs on the images of the column with the most steps.")
        remote = hasattr(den, "upscale")  # a model server holds its own stage 2
        src, device = if_source(), str(den.device)
        problem = None if remote else stage2_problem(backend.variant, device, source_key(src), src)
        if problem:
            st.info(f"Stage 2 is not available here: {problem}")
        elif st.toggle("Upscale with stage 2", key="a0_upscale"):
            from lib.if_hub import IFUnavailable

            try:
                pipe = None if remote else stage2(backend.variant, device, source_key(src), src)
                big = upscaled(backend.key, prompts, columns[-1], seed, result[-1], den, pipe)
            except IFUnavailable as err:
                st.error(str(err))
            else:
                show(big, ncols=len(prompts), target_px=256)
                download_png(grid(big, len(prompts)), f"stage2_seed{seed}.png", "Download 256 px", key="a0_dl256")

"""1.7.2 · Inpainting with RePaint."""

import streamlit as st
import torch

from lib.media.images import grid
from lib.media.plots import resampling_figure
from lib.techniques.repaint import call_timesteps, feathered, jump_points, resampling_path
from ui.backend import StepProgress, prompt_ok, seed_control, stride_control
from ui.layout import download_png
from ui.common import counted
from ui.part_a import (cost_caption, edit_prompt_input, image_mask_and_controls, masked_view, page_setup, show,
                       with_cfg)
from ui.sections.inpainting import DEFAULTS, inpaint_samples

backend = page_setup(
    "inpainting",
    [r"x_{t'} \leftarrow \mathbf{m} \odot x_{t'} + (1 - \mathbf{m}) \odot "
     r"\left(\sqrt{\bar\alpha_{t'}}\,x_{\text{orig}} + \sqrt{1-\bar\alpha_{t'}}\,\varepsilon\right)",
     r"\text{jump back } t' \to t > t':\quad x_t = \sqrt{\bar\alpha_t / \bar\alpha_{t'}}\,x_{t'} + "
     r"\sqrt{1 - \bar\alpha_t / \bar\alpha_{t'}}\,z \;\sim\; q(x_t \mid x_{t'})"],
    "Inpainting regenerates only part of an image (where the mask **m = 1**) and keeps the rest. RePaint does it with "
    "the ordinary sampling loop from pure noise plus one line: after every step, the pixels outside the mask are "
    "replaced by the original image noised to the *same* timestep t' (fresh noise each time), so the model always "
    "sees a consistent picture and fills the hole with content that fits its surroundings. Paint the mask over the "
    "image, or use a preset.\n\n"
    "**Resampling** (RePaint's second idea): the kept pixels only reach the hole through the model's next steps, so "
    "the hole can commit to something that does not fit. With **jump_n_sample** r > 1 the sampler goes down "
    "**jump_length** j steps, re-noises the whole image back up j steps (second formula: the forward process from t' "
    "to t in one draw) and denoises them again, r passes in all, giving the hole r − 1 more chances to agree with "
    "its surroundings — at the price of N + (r − 1)·j·(⌈N/j⌉ − 1) model calls for N steps. On MNIST the effect is "
    "clearest with the empty prompt, where the class must come from the kept half (bench/RESULTS.md). A **feathered** "
    "mask blends the two regions over a few pixels instead of a hard edge.",
)

picked, mask, right = image_mask_and_controls(backend, "inpainting")
with right:
    prompt = edit_prompt_input(backend, picked, "inpainting", "What to put in the hole. MNIST: a digit.")
    c1, c2 = st.columns(2)
    scale = c1.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5,
                      key=f"inpainting_scale_{backend.family}")
    num_samples = c2.slider("Samples", 1, 8, DEFAULTS.samples, key="inpainting_samples")
    c3, c4 = st.columns(2)
    with c3:
        stride = stride_control(backend, key="inpainting_stride")
    with c4:
        seed = seed_control("inpainting_seed").value
    c5, c6, c7 = st.columns(3)
    jump_length = c5.slider("jump_length j", 1, 10, DEFAULTS.jump_length, key="inpainting_jump_length",
                            help="Steps down before each jump back (and the height of the jump).")
    jump_n_sample = c6.slider("jump_n_sample r", 1, 5, DEFAULTS.jump_n_sample, key="inpainting_jump_n_sample",
                              help="Passes over each stretch of j steps; 1 = no resampling (plain RePaint).")
    feather = c7.slider("Feather (px)", 0, backend.size // 8, DEFAULTS.feather,
                        key=f"inpainting_feather_{backend.family}",
                        help="Blend over this many pixels on each side of the mask's edge; 0 = a hard mask.")

if picked is not None and mask is not None and prompt_ok(backend, prompt):
    timesteps = backend.model.timesteps(stride)
    steps = len(timesteps) - 1
    schedule_calls = call_timesteps(timesteps, resampling_path(steps, jump_length, jump_n_sample))
    progress = StepProgress(len(schedule_calls), "Inpainting:")
    x, m = picked.tensor(), feathered(torch.from_numpy(mask), feather)
    result, cost = inpaint_samples(backend.cache_id, picked.array, m.numpy(), prompt, scale, num_samples, stride, seed,
                                   jump_length, jump_n_sample, backend.model, progress)
    progress.done()
    masked = masked_view(x, m)
    c1, c2 = st.columns([1, 2])
    with c1:
        show(torch.cat([x, masked]), ncols=2, caption="original · region to regenerate", target_px=110)
    with c2:
        show(result, ncols=num_samples, caption=f"{num_samples} inpaintings (seed {seed})", target_px=110)
    cost_caption(cost, f"{counted(num_samples, 'sample')} per call{with_cfg(cost, cost.calls * num_samples)}", progress)
    kept = (result - x).abs().mul(m == 0).amax().item()
    st.metric("Largest change outside the mask", f"{kept:.3f}",
              help="RePaint's last step puts the original back wherever m = 0 (feathered: outside the blend), so this "
                   "is exactly 0.")
    st.plotly_chart(resampling_figure(schedule_calls))
    st.caption(f"The timestep at each of the {len(schedule_calls)} model calls: {steps} steps"
               + (f" + (r − 1)·j·(⌈N/j⌉ − 1) = {jump_n_sample - 1}·{jump_length}·"
                  f"{len(jump_points(steps, jump_length))} re-done after jumps back"
                  if len(schedule_calls) > steps else " (no resampling)") + ".")
    download_png(grid(torch.cat([x, masked, result]), num_samples + 2, upscale=max(1, 128 // backend.size)),
                 f"inpaint_seed{seed}.png", "Download")

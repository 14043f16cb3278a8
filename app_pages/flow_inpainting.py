"""Flow edition, an extra (3.2+, not part of the Fall 2026 assignment) · inpainting in flow form."""

import streamlit as st
import torch

from lib.media.images import grid
from ui.backend import StepProgress, prompt_ok, seed_control
from ui.layout import download_png
from ui.common import counted
from ui.flow_backend import flow_page_setup, guidance_w_slider
from ui.part_a import cost_caption, edit_prompt_input, image_mask_and_controls, show, with_cfg
from ui.report_kit import upscale_for
from ui.sections.flow_inpainting import DEFAULTS, euler_steps, inpaintings, strip

backend = flow_page_setup(
    "flow_inpainting",
    [r"x_0 = \varepsilon,\qquad x_{t'} = x_t + h\,v_\text{cfg}(x_t, t, c),\quad\text{then}\quad "
     r"x_{t'} \leftarrow \mathbf{m} \odot x_{t'} + (1 - \mathbf{m}) \odot \left((1 - t')\,\varepsilon + "
     r"t'\,x_\text{orig}\right)",
     r"\text{at } t' = 1:\quad x_1 = \mathbf{m} \odot x_1 + (1 - \mathbf{m}) \odot x_\text{orig}"],
    "**An extra: not part of the Fall 2026 assignment**, which dropped inpainting — this is the DDPM edition's 1.7.2 "
    "(RePaint) in flow form. Inpainting regenerates only part of an image (where the mask **m = 1**) and keeps the "
    "rest. It is ordinary sampling from pure noise ε at t = 0 plus one line: after every Euler step to the new time "
    "t', the pixels to keep are put back where their own straight path from the *same* ε is at t' — so the model "
    "always sees a picture whose kept part is exactly as noisy as the part it is inventing, and fills the hole with "
    "something that fits. At t' = 1 that path ends at the original itself, so the kept pixels come out unchanged. "
    "Unlike the DDPM form, no fresh noise is drawn: the flow's path is fixed by ε. Pick a preset mask or paint one.",
)
value_range = backend.model.value_range

picked, mask, right = image_mask_and_controls(backend, "flow_inpainting", DEFAULTS.mask)
with right:
    prompt = edit_prompt_input(backend, picked, "flow_inpainting", "What to put in the hole" +
                               (": a digit." if backend.family == "mnist" else "."))
    c1, c2, c3 = st.columns(3)
    w = guidance_w_slider(backend, "flow_inpainting_w", container=c1, help="v_c + w (v_c − v_u); 0 = no guidance.")
    num = c2.slider("Samples", 1, 8, DEFAULTS.samples, key="flow_inpainting_samples")
    with c3:
        seed = seed_control("flow_inpainting_seed").value
if picked is None or mask is None or not prompt_ok(backend, prompt):
    st.stop()

progress = StepProgress(euler_steps(), "Inpainting:")
result, cost = inpaintings(backend.cache_id, picked.array, mask, prompt, w, DEFAULTS.h, num, seed, backend, progress)
progress.done()
shown = strip(backend, picked.array, mask, result)
c1, c2 = st.columns([3, 4])
with c1:
    show(shown[:3], ncols=3, caption="original · mask (white: regenerate) · masked input", target_px=110)
with c2:
    show(shown[3:], ncols=num, caption=f"{counted(num, 'inpainting')} (seed {seed})", target_px=110)
what = f"the prompt {prompt!r}" if prompt else "the empty prompt (unconditional)"
cost_caption(cost, f"{counted(num, 'sample')} per call{with_cfg(cost, cost.calls * num)}", progress)
st.caption(f"Guided by {what}, w = {w:g}: {counted(euler_steps(), 'Euler step')} of h = {DEFAULTS.h:g}, all samples "
           "in one batch.")
kept = (result - backend.image(picked.array)).abs().mul(torch.from_numpy(mask) == 0).amax().item()
st.metric("Largest change outside the mask", f"{kept:.3f}",
          help="The last step puts the original back wherever m = 0, so this is exactly 0.")
download_png(grid(shown, num + 3, upscale=upscale_for(backend.size)), f"flow_inpainting_seed{seed}.png")

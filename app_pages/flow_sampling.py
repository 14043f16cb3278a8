"""Flow edition A 1.6 and 2.1 · generating from noise, then with classifier-free guidance from the same noises."""

import streamlit as st
import torch

from lib.flow.euler import scale_from_course_w
from lib.media.images import grid
from ui.backend import StepProgress, prompt_ok, seed_control
from ui.layout import download_png
from ui.common import counted
from ui.flow_backend import flow_page_setup, guidance_w_slider, prompt_help
from ui.part_a import prompt_input, show
from ui.report_kit import upscale_for
from ui.sections.flow_sampling import DEFAULTS, samples, sampling_steps

backend = flow_page_setup(
    "flow_sampling",
    [r"\textbf{1.6}\quad x_0 \sim \mathcal{N}(0, I),\qquad x_{t+h} = x_t + h\,v_\theta(x_t, t, c),\qquad "
     r"t = 0 \to 1,\ h = 0.02",
     r"\textbf{2.1}\quad v_\text{cfg} = v_c + w\,(v_c - v_u),\qquad v_c = v_\theta(x_t, t, c),\ "
     r"v_u = v_\theta(x_t, t, \varnothing)"],
    "Starting from pure noise at t = 0 and integrating the velocity to t = 1 draws a new image: 50 Euler steps of "
    "h = 0.02. Conditioning on the prompt alone often gives weak, smudged results. Classifier-free guidance asks the "
    "model twice at every step — with the prompt and without — and pushes past the conditional velocity, away from "
    "the unconditional one, by w. w = 0 is the plain conditional velocity of 1.6. (Part B writes the same rule "
    "v_u + γ(v_c − v_u): γ = w + 1.) Both rows start from the same noises, so every difference is the guidance's.",
)
value_range = backend.model.value_range

c1, c2, c3, c4 = st.columns(4)
prompt = prompt_input("Prompt", backend.defaults.prompt, "flow_sampling_prompt", backend.family,
                      help=prompt_help(backend), container=c1)
num = c2.slider("Samples", 1, 8, DEFAULTS.samples, key="flow_sampling_samples")
own = (f"this model's own (part B's γ = {scale_from_course_w(backend.guidance_w):g})" if backend.family == "mnist"
       else "the course's")
w = guidance_w_slider(backend, "flow_sampling_w", container=c3,
                      help=f"0 = no guidance. The default {backend.guidance_w:g} is {own}.")
with c4:
    seed = seed_control("flow_sampling_seed").value
if not prompt_ok(backend, prompt):
    st.stop()

steps = sampling_steps()
progress = StepProgress(2 * steps, "Sampling, without and with guidance:")
plain = samples(backend.cache_id, prompt, num, DEFAULTS.h, 0.0, seed, backend, progress)
guided = samples(backend.cache_id, prompt, num, DEFAULTS.h, w, seed, backend, progress)
progress.done()
what = f"the prompt {prompt!r}" if prompt else "the empty prompt (unconditional)"
st.subheader("1.6 · From noise, without guidance")
show(plain, value_range=value_range, target_px=120, caption=f"{what} · w = 0 · {counted(steps, 'Euler step')}")
st.subheader(f"2.1 · With classifier-free guidance, w = {w:g}")
show(guided, value_range=value_range, target_px=120, caption=f"{what} · w = {w:g} · the same noises")
st.caption(f"Seed {seed}: one generator draws all {num} starting noises. With guidance every step is one batched call "
           "on the conditional and the unconditional rows" + (" — though with the empty prompt both are the same, so "
                                                              "every w draws the same images." if not prompt else "."))
if backend.family == "pixnerd" and prompt == backend.defaults.prompt:
    st.info("1.6 asks for a note on any subject bias: the course's own validation found that this prompt drew "
            "portraits in all 5 guided samples — it is not a neutral prompt for this checkpoint.")
download_png(grid(torch.cat([plain, guided]), num, value_range, upscale=upscale_for(backend.size)),
             f"flow_sampling_w{w:g}_seed{seed}.png")

"""1.9 · Hybrid images by factorized diffusion."""

import streamlit as st

from lib.media.images import grid
from lib.media.text import quoted_prompt
from ui import layout
from ui.backend import StepProgress, prompt_ok
from ui.layout import download_png
from ui.common import counted
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, prompt_input, samples_stride_seed, show, with_cfg
from ui.sections.hybrids import (CHOICES, COLOUR, DEFAULTS, MOTION, THREE, TRIPLE_NOTE, TWO, Request, decomposition,
                                 factorized, filter_params, prompt_defaults, show_bands, show_parts, show_step_back,
                                 show_mnist_verdict, show_viewing_sizes, VIEWING_SIZES_TEXT)

backend = page_setup(
    "hybrids",
    [r"\varepsilon = \operatorname{lowpass}(\varepsilon_1) + \operatorname{highpass}(\varepsilon_2),",
     r"\varepsilon_i = \text{CFG-UNet}(x_t, t, p_i), \quad \operatorname{lowpass} = G_{k,\sigma} * \cdot, "
     r"\quad \operatorname{highpass} = \mathrm{id} - \operatorname{lowpass}"],
    "A hybrid image shows one thing from far away and another up close: our eyes see only the coarse shapes (low "
    "frequencies) of a small or distant picture and the fine detail (high frequencies) of a near one. Factorized "
    "diffusion builds one directly: at every step the noise estimate takes its **low frequencies from prompt 1** and "
    "its **high frequencies from prompt 2** (a Gaussian blur with kernel k and width σ splits them). The spec uses "
    "k = 33, σ = 2 for 64-px images; the defaults here are sized for the backend's images. More generally (Geng et al. "
    "2024) any linear filters f₁ … f_N that add up to the identity share the image out, ε = Σᵢ fᵢ(εᵢ): pick the "
    "decomposition below.",
)


options = [name for name, c in CHOICES.items() if backend.channels == 3 or not c.rgb_only]
choice = st.selectbox("Decomposition", options, key=f"hybrids_decomposition_{backend.family}",
                      help="Which linear filters split the image between the prompts (they always add up to the "
                           "identity). Colour vs greyscale and motion blur need 3-channel images: DeepFloyd IF."
                           if backend.channels == 1 else "Which linear filters split the image between the prompts.")
layout.show_formula(CHOICES[choice].formula)
if choice == THREE and backend.family == "mnist":
    st.info(TRIPLE_NOTE)
columns = st.columns(len(CHOICES[choice].prompts))
prompts = tuple(prompt_input(label, default, key, backend.family, container=col, help=EMPTY_PROMPT_HELP)
                for (label, key), default, col in zip(CHOICES[choice].prompts, prompt_defaults(backend.family, choice), columns))
params = filter_params(backend, choice)
dec = decomposition(choice, params)
scale = st.slider("Guidance scale γ", 0.0, 10.0, DEFAULTS[backend.family].guidance, step=0.5,
                  key=f"hybrids_scale_{backend.family}")
num_samples, stride, seed = samples_stride_seed(backend, "hybrids")
with st.expander("The bands: what each prompt controls"):
    show_bands(backend, choice, dec)

if all(prompt_ok(backend, p, field=f"Prompt {i + 1}") for i, p in enumerate(prompts)):
    steps = len(backend.model.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling:")
    r = Request(choice=choice, params=params, prompts=prompts, scale=scale, num_samples=num_samples, stride=stride,
                seed=seed)
    result, cost = factorized(backend.cache_id, r, backend.model, progress)
    progress.done()
    st.markdown(f"**Up close**: asked for {quoted_prompt(prompts[-1])}" if choice in (TWO, THREE) else "**The result**")
    show(result, ncols=num_samples, target_px=backend.defaults.display_px)
    cost_caption(cost, f"{counted(num_samples, 'sample')} × {len(prompts)} prompts per call"
                       f"{with_cfg(cost, cost.calls * num_samples * len(prompts))}", progress)
    if choice in (TWO, THREE):
        show_step_back(backend, result, params[0], params[-1], prompts[0])
        st.markdown(VIEWING_SIZES_TEXT)
        show_viewing_sizes(backend, result, prompts, tuple(reversed(params[1:])))
        if backend.family == "mnist":
            show_mnist_verdict(choice, params)
    with st.expander("Each prompt's part" if choice in (COLOUR, MOTION) else f"Prompt {len(prompts)}'s part: the "
                     "high-pass"):
        show_parts(result, choice, dec, params)
    download_png(grid(result, num_samples, upscale=max(1, 128 // backend.size)), f"hybrid_seed{seed}.png", "Download")

"""Flow edition A 3.4 · hybrid images: the low frequencies of one prompt, the high frequencies of another."""

import streamlit as st

from lib.flow.euler import euler_step_count
from lib.media.images import grid
from lib.techniques.filters import lowpass, seen_small
from ui.backend import StepProgress, prompt_ok, seed_control
from ui.layout import download_png
from ui.flow_backend import flow_page_setup, guidance_w_slider, prompt_help
from ui.part_a import prompt_input, show
from ui.report_kit import upscale_for
from ui.sections.flow_hybrids import DEFAULTS, MNIST_NO_HYBRID, MNIST_NO_HYBRID_BELOW, hybrids, low_pass, sigma_origin

backend = flow_page_setup(
    "flow_hybrids",
    [r"v = G_\sigma\big(v_\text{cfg}(x_t, t, p_1)\big) + \Big(v_\text{cfg}(x_t, t, p_2) - "
     r"G_\sigma\big(v_\text{cfg}(x_t, t, p_2)\big)\Big),\qquad x_{t+h} = x_t + h\,v",
     r"G_\sigma:\ \text{Gaussian, } \sigma = 16 \text{ and } 265 \text{ taps at } 512\,\text{px; taps scaled to the "
     r"image, } \sigma \text{ measured on MNIST}"],
    "A hybrid image looks like one thing from far away and another up close: the eye sees only low frequencies at a "
    "distance. Factorized diffusion builds one by taking, at every step, the **low frequencies** of the velocity for "
    "prompt 1 and the **high frequencies** of the velocity for prompt 2. The course found hybrids unreliable on "
    "PixNerd: often one subject wins outright — look at the small copies for the far reading.",
)
value_range = backend.model.value_range
kernel, default_sigma = low_pass(backend.size, backend.family)

d = DEFAULTS[backend.family]
c1, c2, c3, c4 = st.columns(4)
far = prompt_input("Prompt 1 (from far)", d.far, "flow_hybrids_far", backend.family, help=prompt_help(backend),
                   container=c1)
near = prompt_input("Prompt 2 (up close)", d.near, "flow_hybrids_near", backend.family, help=prompt_help(backend),
                    container=c2)
num = c3.slider("Samples", 1, 8, d.samples, key="flow_hybrids_samples")
with c4:
    seed = seed_control("flow_hybrids_seed").value
c5, c6 = st.columns(2)
w = guidance_w_slider(backend, "flow_hybrids_w", container=c5, help="v_c + w (v_c − v_u) per prompt.", default=d.w)
sigma = c6.slider("Low-pass σ (px)", 0.5, max(4.0, 2 * default_sigma), default_sigma, 0.125,
                  key=f"flow_hybrids_sigma_{backend.family}",
                  help=f"The Gaussian that splits the two bands: larger σ gives prompt 2 more of the image. Default: "
                       f"{sigma_origin(backend.size, default_sigma)}.")
if not (prompt_ok(backend, far, field="Prompt 1") and prompt_ok(backend, near, field="Prompt 2")):
    st.stop()
if backend.family == "mnist" and sigma < MNIST_NO_HYBRID_BELOW:
    st.warning(MNIST_NO_HYBRID)

progress = StepProgress(euler_step_count(0.0, d.h), "Sampling hybrids:")
images = hybrids(backend.cache_id, far, near, kernel, sigma, w, d.h, num, seed, backend, progress)
progress.done()
show(images, value_range=value_range, target_px=140, caption=f"up close: {near!r}")
far_view = seen_small(images, sigma)
show(far_view, value_range=value_range, target_px=far_view.shape[-1],
     caption=f"from far: {far_view.shape[-1]} px wide (each 2σ × 2σ block averaged, as from 2σ times further away)")
show(lowpass(images, kernel, sigma), value_range=value_range, target_px=140,
     caption=f"their low frequencies alone (what the far view sees): {far!r}")
st.caption(f"Low-pass: a Gaussian of σ = {sigma:.3g} px ({sigma_origin(backend.size, sigma)}) and {kernel} taps (the "
           f"course's 265 at 512 px, scaled to {backend.size} px). Guidance w = {w:g}, h = {d.h:g}, seed {seed}.")
download_png(grid(images, num, value_range, upscale=upscale_for(backend.size)), f"flow_hybrid_{far}_{near}_seed{seed}.png")

"""Flow edition A 1.1 – 1.3 · noisy inputs on the straight path, classical (blur) and one-step denoising."""

import pandas as pd
import streamlit as st
import torch

from lib.media.images import grid
from ui.backend import seed_control
from ui.layout import download_png
from ui.flow_backend import edit_prompt_origin, flow_page_setup
from ui.report_kit import upscale_for
from ui.part_a import pick_image, show
from ui.sections.flow_denoising import DEFAULTS, at_time, denoised

backend = flow_page_setup(
    "flow_denoising",
    [r"\textbf{1.1}\quad x_t = (1 - t)\,\varepsilon + t\,x_1,\qquad \varepsilon \sim \mathcal{N}(0, I),\qquad "
     r"t = 0 \text{ noise} \;\to\; t = 1 \text{ image}",
     r"\textbf{1.2}\quad \frac{x_t}{t} = x_1 + \frac{1 - t}{t}\,\varepsilon,\qquad "
     r"\hat x = G_\sigma\!\left(\frac{x_t}{t}\right),\ \sigma \in \{1, 2, 4, 8, 16\}",
     r"\textbf{1.3}\quad \hat x_1 = x_t + (1 - t)\,v_\theta(x_t, t, c)"],
    "Flow matching walks a straight line from pure noise (t = 0) to the image (t = 1): x_t mixes the two. The "
    "classical way to denoise first divides by t — the path shrinks the image by t, so this restores its amplitude "
    "under noise of size (1 − t)/t — and then blurs, keeping the σ with the lowest error. The model instead predicts "
    "the **velocity** v = dx/dt of the path; following it for the remaining time 1 − t lands on an estimate of the "
    "image in one step. It is *added*: a velocity points towards the image, where a DDPM's noise estimate is "
    "subtracted.",
)
model = backend.model
lo_hi = model.value_range

left, right = st.columns([2, 3])
with left:
    picked = pick_image(backend, "flow_denoising")
with right:
    t = st.slider("Time t", 0.0, 1.0, DEFAULTS.t, 0.01, key="flow_denoising_t",
                  help="0 = pure noise, 1 = the image (the flow edition's time runs opposite to the DDPM's index).")
    seed = seed_control("flow_denoising_seed").value
if picked is None:
    st.stop()

prompt = backend.defaults.edit_prompt(picked.digit)
x1 = backend.image(picked.array)
course = denoised(backend.cache_id, picked.array, DEFAULTS.course_times, prompt, seed, DEFAULTS.sigmas, backend)
at_t = at_time(course, t, backend.cache_id, picked.array, prompt, seed, backend)
sweep = at_t.sweeps[0]
st.subheader(f"At t = {t:g}")
m1, m2, m3 = st.columns(3)
m1.metric("MSE of x_t", f"{at_t.noisy_mse[0]:.4f}")
m2.metric("MSE of the best blur", "—" if sweep is None else f"{min(sweep.errors):.4f}",
          help=None if sweep is None else f"σ = {sweep.best_sigma:g}")
m3.metric("MSE of the one-step x̂₁", f"{at_t.one_step_mse[0]:.4f}")
row = [x1, at_t.noisy, at_t.one_step] if sweep is None else [x1, at_t.noisy, sweep.best, at_t.one_step]
show(torch.cat(row), value_range=lo_hi, target_px=backend.defaults.display_px,
     caption=f"original ({picked.caption}) · x_{t:g} · " + ("" if sweep is None else f"G_σ(x_t / t), σ = "
                                                             f"{sweep.best_sigma:g} · ") + "one-step x̂₁")
if sweep is None:
    st.info("At t = 0, x_t is pure noise: dividing by t is undefined and there is nothing of the image to blur. "
            "The one-step estimate still works — it is the model's guess from noise alone.")

times_text = ", ".join(f"t = {s:g}" for s in course.times)
st.subheader(f"The course's three times: {times_text}")
rows = torch.cat([course.noisy, torch.cat([s.best for s in course.sweeps]), course.one_step])
show(rows, ncols=len(course.times), value_range=lo_hi, target_px=130,
     caption="Rows: x_t (1.1) · its best blur (1.2) · the one-step estimate (1.3); one ε for every t")
st.caption(f"The one-step estimate is conditioned on the prompt {prompt!r}"
           + edit_prompt_origin(backend, prompt) + " without guidance. MSE is "
           f"measured in the model's pixel range [{lo_hi[0]:g}, {lo_hi[1]:g}].")
table = pd.DataFrame({f"t = {t_k:g}": s.errors for t_k, s in zip(course.times, course.sweeps)},
                     index=[f"blur σ = {sigma:g}" for sigma in DEFAULTS.sigmas])
table.loc["one-step x̂₁"] = list(course.one_step_mse)
st.markdown("**MSE against the original**, the lowest of each column highlighted:")
st.dataframe(table.style.format("{:.4f}").highlight_min(axis=0))
download_png(grid(rows, len(course.times), lo_hi, upscale=upscale_for(backend.size)), f"flow_denoising_seed{seed}.png")

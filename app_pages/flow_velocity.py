"""Flow edition A 1.4 · visualising velocity: the predicted and the true update, and the per-pixel error map."""

import streamlit as st
import torch

from lib.flow.denoising import symmetric_limit
from lib.media.plots import error_maps_figure
from ui.backend import seed_control
from ui.flow_backend import edit_prompt_origin, flow_image_page
from ui.part_a import show
from ui.sections.flow_velocity import DEFAULTS, diagnostics

backend, picked, right = flow_image_page(
    "flow_velocity",
    [r"\text{predicted update } (1 - t)\,\hat v,\qquad \text{true update } (1 - t)\,v_\text{gt} = x_1 - x_t,"
     r"\qquad v_\text{gt} = x_1 - \varepsilon",
     r"E_t = \sqrt{\operatorname{mean}_\text{channels}\big[(1 - t)(\hat v - v_\text{gt})\big]^2}\quad\text{per pixel}"],
    "What does the model's velocity actually say? Over the time left, 1 − t, it moves x_t by (1 − t)·v̂; the move "
    "that lands exactly on the image is x₁ − x_t. Both are shown on **one symmetric scale** — mid-grey is no "
    "change, brighter adds, darker removes — and the heat maps show where they disagree, with **one colour scale for "
    "every t**, so the panels compare directly. The error is computed before any display scaling.",
)

with right:
    seed = seed_control("flow_velocity_seed").value
    st.caption("The same ε as on the 1.1 – 1.3 page (same seed), so these are the x_t shown there.")
if picked is None:
    st.stop()

prompt = backend.defaults.edit_prompt(picked.digit)
noisy, d = diagnostics(backend.cache_id, picked.array, DEFAULTS.times, prompt, seed, backend)
limit = symmetric_limit(d.predicted_update, d.true_update)
zmax = d.error_map.max().item()
n = len(DEFAULTS.times)
times_text = " · ".join(f"t = {t:g}" for t in DEFAULTS.times)
show(backend.image(picked.array), value_range=backend.model.value_range, target_px=120,
     caption=f"original x₁ ({picked.caption})")
show(noisy, ncols=n, value_range=backend.model.value_range, target_px=150, caption=f"x_t: {times_text}")
show(torch.cat([d.predicted_update, d.true_update]), ncols=n, value_range=(-limit, limit), target_px=150,
     caption=f"Top: predicted update (1 − t)·v̂; bottom: true update x₁ − x_t. One scale [−{limit:.2f}, {limit:.2f}], "
             "mid-grey = 0")
st.plotly_chart(error_maps_figure([m.numpy() for m in d.error_map], [f"E at t = {t:g}" for t in DEFAULTS.times],
                                  zmax), theme=None)  # keep its colour scale: Streamlit's theme replaces it
means = d.error_map.mean(dim=(1, 2)).tolist()
for column, t, mean in zip(st.columns(n), DEFAULTS.times, means):
    column.metric(f"mean E at t = {t:g}", f"{mean:.4f}")
best = DEFAULTS.times[min(range(n), key=means.__getitem__)]
st.markdown(
    f"Conditioned on the prompt {prompt!r}" + edit_prompt_origin(backend, prompt)
    + f", without guidance. The smallest mean error here is at **t = {best:g}**. Two things shrink it as t grows: "
    "the update itself is scaled by 1 − t, and the less noise x_t holds, the less the model has to guess. Where the "
    "heat map glows is where the model's guess of the image differs from this image — often along its edges.")

"""B 1.2.3 (flow edition) · denoising pure noise: B1's UNet fed pure noise, trained to give back a digit — it learns the
average digit."""

import streamlit as st

from lib.media.images import grid
from ui import common, layout
from ui.backend import seed_control
from ui.layout import section_header
from ui.sections.pure_noise import DEFAULTS, centroid_lesson, loss_floor, real_digit_mse
from ui.sidebar import render_sidebar
from ui.training.live import training_panel
from ui.training.results import loss_panel, no_model_yet, provenance_caption, run_to_show, snapshot_row
from ui.training.settings import config_controls

section_header(
    "pure_noise",
    [r"\mathcal{L} = \mathbb{E}_{x,\varepsilon}\,\big\lVert D_\theta(\varepsilon) - x \big\rVert^2,\qquad "
         r"\varepsilon \sim \mathcal{N}(0, I)",
     r"\mathcal{L} = \mathbb{E}_\varepsilon \big\lVert D_\theta(\varepsilon) - \bar x \big\rVert^2 + "
         r"\mathbb{E}_x \big\lVert x - \bar x \big\rVert^2 \;\ge\; \mathbb{E}_x \big\lVert x - \bar x \big\rVert^2,"
         r"\qquad \bar x = \mathbb{E}[x]"],
    "The single-step denoiser of B1 again (D = 128, 5 epochs), but its input is **pure noise** ε and its target a "
    "clean digit x drawn independently of it. Nothing in ε tells which digit to produce, so the loss splits in two "
    "(second line): how far the output lies from the mean training digit x̄ — the **centroid** — and the digits' own "
    "spread around x̄, which no network can remove. The best the UNet can do is to output x̄ whatever the noise: a "
    "blurry average digit. Section 4 checks this on the trained model.",
)
render_sidebar()

train_set, test_set = common.mnist()
if train_set.source != "mnist":
    st.warning(train_set.note)
st.header("1 · Training")
config = config_controls("pure_noise", train_set)
training_panel(config, key="pure_noise", log_y=st.session_state.get("pure_noise_log", True))
run, note = run_to_show("pure_noise", config)

st.header("2 · Results")
if run is None:
    no_model_yet("pure-noise denoiser", "pure_noise")
provenance_caption(run, note)
centroid = common.mean_training_image()
floor = loss_floor(train_set.as_float(), centroid)
loss_panel(run, key="pure_noise", log_default=True)
st.caption(f"The floor: the loss of the constant output x̄ on the training digits, E‖x − x̄‖² = **{floor:.4f}** per "
           "pixel. No pure-noise denoiser goes below it.")

st.header("3 · Outputs after each epoch")
snapshot_row(run, key="pure_noise", caption="D(ε) for 40 fixed noise images")

st.header("4 · The lesson: the centroid")
c1, c2 = st.columns([1, 3])
with c1:
    seed = seed_control("pure_noise_seed")
num = c2.slider("Noise images", 2, 20, DEFAULTS.samples, key="pure_noise_samples")
found = centroid_lesson(common.run_key(run), num, seed, run.model, centroid)
left, middle, right = st.columns([1, 4, 1])
layout.image(grid(centroid.unsqueeze(0), 1, (0.0, 1.0), upscale=5), "x̄: the mean of the training digits", left)
layout.image(grid(found.outputs, min(num, 10), (0.0, 1.0), upscale=3), f"D(ε) for {num} fresh noise images", middle)
layout.image(grid(found.outputs.mean(dim=0, keepdim=True), 1, (0.0, 1.0), upscale=5), "their mean", right)
scale = real_digit_mse(test_set.as_float(), centroid)
distance = found.output_mse.mean().item()
closer = (f"the outputs are {scale / distance:.0f} times closer to the centroid than real digits are"
          if 0 < distance < scale else "this run's outputs are not yet closer to it than real digits are")
st.markdown(
    f"Each output lies **{distance:.4f}** from x̄ on average (mean squared difference per pixel; the farthest "
    f"{found.output_mse.max():.4f}), while a real test digit lies **{scale:.4f}** from it: {closer}. The outputs "
    f"differ from each other by a per-pixel spread of **{found.spread:.4f}**: different noise, nearly the same "
    "picture — the average digit, the one output that minimises the squared error against every digit at once.")
st.caption(f"Noise seed {seed}; pixels in [0, 1].")

"""B 1.2.3 (flow edition) · denoising pure noise: B1's UNet fed pure noise, trained to give back a digit — it learns the
average digit."""

import streamlit as st

from lib.media.images import grid
from ui import common, layout
from lib.train.runs import pure_noise_probe
from ui.backend import DEFAULT_SEED, seed_control
from ui.layout import section_header
from ui.sections.pure_noise import DEFAULTS, centroid_lesson, loss_floor, real_digit_mse
from ui.sidebar import render_sidebar
from ui.training.page import run_sections

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


def noise_and_digits(_config) -> None:
    st.header("1 · Noise in, a digit out")
    train_set = common.mnist()[0]
    left, right = st.columns(2)
    layout.image(grid(pure_noise_probe(DEFAULTS.pairs, DEFAULT_SEED), DEFAULTS.pairs, (0.0, 1.0), upscale=3),
                 "inputs ε ~ N(0, I)", left)
    layout.image(grid(train_set.as_float()[:DEFAULTS.pairs], DEFAULTS.pairs, (0.0, 1.0), upscale=3),
                 "targets x: training digits, drawn independently of ε", right)
    st.caption("A training batch pairs each noise image with a digit at random: the input says nothing about the "
               f"target (noise seed {DEFAULT_SEED}; values outside [0, 1] clipped for display).")


run = run_sections("pure_noise", key="pure_noise", what="pure-noise denoiser", intro=noise_and_digits,
                   snapshot_caption="D(ε) for 40 fixed noise images", side_by_side=True)
train_set, test_set = common.mnist()
centroid = common.mean_training_image()
st.header("4 · The lesson: the centroid")
c1, c2 = st.columns([1, 3])
with c1:
    seed = seed_control("pure_noise_seed").value
num = c2.slider("Noise images", 2, 20, DEFAULTS.samples, key="pure_noise_samples")
found = centroid_lesson(common.run_cache_id(run), num, seed, run.model, centroid)
left, middle, right = st.columns([1, 4, 1])
layout.image(grid(centroid.unsqueeze(0), 1, (0.0, 1.0), upscale=5), "x̄: the mean of the training digits", left)
layout.image(grid(found.outputs, min(num, 10), (0.0, 1.0), upscale=3), f"D(ε) for {num} fresh noise images", middle)
layout.image(grid(found.outputs.mean(dim=0, keepdim=True), 1, (0.0, 1.0), upscale=5), "their mean", right)
scale = real_digit_mse(test_set.as_float(), centroid)
distance = found.output_mse.mean().item()
closer = (f"the outputs are {scale / distance:.0f} times closer to the centroid than real digits are"
          if 0 < distance < scale else "this run's outputs are not yet closer to it than real digits are")
floor = loss_floor(train_set.as_float(), centroid)
st.markdown(
    f"Each output lies **{distance:.4f}** from x̄ on average (mean squared difference per pixel; the farthest "
    f"{found.output_mse.max():.4f}), while a real test digit lies **{scale:.4f}** from it: {closer}. The outputs "
    f"differ from each other by a per-pixel spread of **{found.spread:.4f}**: different noise, nearly the same "
    "picture — the average digit, the one output that minimises the squared error against every digit at once. "
    f"It is also the floor of the loss curve above: the loss of the constant output x̄ on the training digits, "
    f"E‖x − x̄‖² = **{floor:.4f}** per pixel. No pure-noise denoiser goes below it.")
st.caption(f"Noise seed {seed}; pixels in [0, 1].")

"""Beyond the assignment · DDPM and flow matching side by side: the same UNet, data and starting noise, two objectives —
quality per network evaluation, and one digit's two paths."""

import streamlit as st

from lib.flow.ddpm_vs_flow import NFE_COUNTS, DdpmContender, FlowContender
from lib.media.images import grid
from lib.media.plots import nfe_quality_figure, path_distance_figure
from ui import common, layout
from ui.backend import StepProgress, seed_control
from ui.common import counted, run_cache_id
from ui.layout import section_header
from ui.sections.ddpm_vs_flow import (DEFAULTS, contender_of, frame_indices, halfway_frame, ink_summary, judge_text,
                                      measured, path, path_summary, quality_summary, quality_table, real_mid_grey,
                                      samples_picture, strip, the_two_models)
from ui.sidebar import render_sidebar

section_header(
    "ddpm_vs_flow",
    [r"\text{DDPM, } K \text{ steps: } t = T{-}1,\ T{-}1{-}s,\ \dots \to \text{clean},\ s = T/K:\quad "
     r"x_{t'} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta}{1-\bar\alpha_t}\,\hat x_0 + "
     r"\frac{\sqrt{\alpha}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\,x_t + \sqrt{\beta}\,z",
     r"\text{flow, } K \text{ steps: } x_{t+h} = x_t + h\,u_\theta(x_t, t, \mathbf{c}),\quad h = 1/K,\ "
     r"t = 0 \to 1",
     r"\text{both: the same } \varepsilon \sim \mathcal{N}(0, I) \text{ to start, CFG at each spec's } \gamma = "
     rf"{DdpmContender.scale:g} \text{{ (DDPM)}},\ {FlowContender.scale:g} \text{{ (flow), in one batched UNet call per "
     r"step}"],
    "The two objectives of part B side by side, on what they share: the class-conditioned UNet, MNIST, and the very "
    "same starting noise. The DDPM learned to predict the noise ε and samples by ancestral steps that add fresh noise; "
    "the flow model learned the velocity of the straight path from noise to digit and integrates it with Euler steps. "
    "A *network evaluation* (NFE) is one step of either: one UNet call on the conditional and unconditional rows "
    "together. How few evaluations does each need for good digits — and what do their paths look like on the way?",
)
render_sidebar()

train_set = common.mnist()[0]
if train_set.source != "mnist":
    st.warning(train_set.note)

st.header("1 · The two models")
present = the_two_models()
if not present:
    st.stop()
contenders = {model: contender_of(run) for model, run in present.items()}
st.caption("The same seed gives both models the same starting noise ε. Each spec keeps its own pixel range — the "
           "DDPM's digits in [−1, 1], the flow model's in [0, 1] — so the same ε sits differently against them; every "
           "picture here shows both on one grey scale, [−1, 1].")
seed = (seed_entry := seed_control("ddpm_vs_flow_seed", feeds="Measure")).value

st.header("2 · Quality against network evaluations")
c1, c2 = st.columns(2)
per_digit = c1.slider("Samples of each digit", 1, 10, DEFAULTS.per_digit, key="ddpm_vs_flow_per_digit")
nfe_counts = tuple(sorted(c2.multiselect("Network evaluations (NFE)", NFE_COUNTS, DEFAULTS.nfe_counts,
                                         key="ddpm_vs_flow_nfe")))
calls = sum(nfe_counts)
st.caption(f"Each model: {counted(calls, 'UNet call')} of {2 * 10 * per_digit} images (10 digits × {per_digit} × "
           "conditional and unconditional), every count starting from the same noise.")
if not nfe_counts:
    st.info("Choose at least one number of network evaluations.")
elif st.button("Measure", key="ddpm_vs_flow_measure", type="primary", disabled=not seed_entry.valid) or st.session_state.get("ddpm_vs_flow_measured"):
    st.session_state["ddpm_vs_flow_measured"] = True
    classifier, real = common.digit_judge()
    st.caption(judge_text(real, len(train_set)))
    progress = StepProgress(calls * len(contenders), "Sampling…")
    points = {c.name: measured(run_cache_id(present[model]), f"judge-{id(classifier)}", per_digit, nfe_counts, seed, c,
                               classifier, lambda i, t, x, e, name=c.name: progress.advance(name))
              for model, c in contenders.items()}
    progress.done()
    st.plotly_chart(nfe_quality_figure({name: ([p.nfe for p in ps], [p.quality.agrees for p in ps],
                                               [p.quality.confident for p in ps]) for name, ps in points.items()},
                                       (real.agrees, real.confident)), key="ddpm_vs_flow_quality")
    st.markdown(quality_summary(points, DEFAULTS.target))
    st.markdown(ink_summary(points, real_mid_grey()))
    st.dataframe(quality_table(points, nfe_counts), hide_index=True)
    shown = st.select_slider("The samples judged at", nfe_counts, nfe_counts[len(nfe_counts) // 2],
                             format_func=lambda k: counted(k, "evaluation"), key="ddpm_vs_flow_samples_nfe")
    for column, (name, ps) in zip(layout.columns(len(points)), points.items()):
        (p,) = [p for p in ps if p.nfe == shown]
        layout.image(samples_picture(p), f"{name}, {counted(shown, 'evaluation')}: one column per digit 0–9 · "
                                         f"{p.quality.agrees:.0%} read as asked", container=column)
else:
    st.info(f"**Measure** samples both models at every count above ({counted(calls * len(contenders), 'UNet call')} "
            "in all; seconds on a GPU, minutes on a CPU) and judges what they draw with a digit classifier (trained "
            "on the first press, then kept in the model cache).")

st.header("3 · One digit, two paths")
d1, d2 = st.columns(2)
digit = d1.selectbox("Digit", range(10), DEFAULTS.digit, key="ddpm_vs_flow_digit")
nfe = d2.select_slider("Network evaluations", NFE_COUNTS, DEFAULTS.path_nfe, key="ddpm_vs_flow_path_nfe")
paths = {c.name: path(run_cache_id(present[model]), digit, nfe, seed, c) for model, c in contenders.items()}
layout.image(strip(paths, DEFAULTS.strip_frames),
             "Rows: " + ", ".join(paths) + f" · frames after 0, 10, …, 100 % of the {nfe} evaluations "
             f"(steps {', '.join(map(str, frame_indices(nfe, DEFAULTS.strip_frames)))}), from the same noise")
frame = st.slider("Frame: evaluations spent", 0, nfe, halfway_frame(nfe), key="ddpm_vs_flow_frame")
for column, (name, p) in zip(layout.columns(len(paths)), paths.items()):
    layout.image(grid(p.frames[frame:frame + 1], 1, upscale=6), f"{name} · {p.labels[frame]}", container=column)
st.plotly_chart(path_distance_figure({name: (p.fractions, p.distance_to_final()) for name, p in paths.items()}),
                key="ddpm_vs_flow_distance")
if len(paths) == 2:
    st.markdown(path_summary(paths))

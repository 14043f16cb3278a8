"""B 2.6 (flow edition) · "Can we get rid of the annoying learning rate scheduler?": the class flow model trained at a
constant learning rate, compared with the scheduled run of the same settings by numbers computed here."""

import pandas as pd
import streamlit as st

from lib.flow.mnist import GUIDANCE_SCALE
from lib.media.plots import loss_comparison_figure
from ui import common, layout
from ui.backend import seed_control
from ui.layout import section_header
from ui.sections import class_flow
from ui.sections.constant_lr import (DEFAULTS, compensation_text, grid_quality, last_epoch_loss, rates_table,
                                     scheduled_counterpart, test_loss)
from ui.sections.ddpm_vs_flow import judge_text
from ui.sidebar import render_sidebar
from ui.training.flow_page import draw_samples, euler_steps_control
from ui.training.live import training_panel
from ui.training.results import grid_of, no_model_yet, provenance_caption, run_to_show
from ui.training.settings import config_controls, settings_text

section_header(
    "constant_lr",
    [r"\text{scheduled: } \eta_k = \eta_0\,\gamma^k,\quad \gamma = 0.1^{1/E},\quad k = 0, \dots, E - 1"
         r"\qquad\qquad \text{constant: } \eta_k = \eta",
     r"\Big(\prod_{k=0}^{E-1} \eta_0\,\gamma^k\Big)^{1/E} = \eta_0\,0.1^{(E-1)/(2E)}"],
    "The spec's class flow model learns at Adam's rate η₀ = 0.01 for its first epoch and shrinks it tenfold over the "
    "run (ExponentialLR, stepped once per epoch). The assignment asks for a run **without** the scheduler that matches "
    "its quality, and for the compensation chosen. Adam's step is proportional to the learning rate: the schedule "
    "takes large steps while the model is far from good and small ones at the end, where large steps would only make "
    "the weights jitter around the minimum. One constant rate has to do both, so it must lie **below 0.01** (kept "
    "to the end, 0.01 leaves the last weights noisy) and above the schedule's last 0.0013 (which would learn too "
    "slowly early on). The compensation here is the rate the schedule passes mid-run — the geometric mean of its "
    "rates, so that on a log scale the constant run's steps are as large as the scheduled run's on average — and the "
    "moving average of the weights that every flow run keeps, which smooths out the jitter the missing decay leaves.",
)
render_sidebar()

train_set, test_set = common.mnist()
if train_set.source != "mnist":
    st.warning(train_set.note)
compensation = st.container()

st.header("2 · Training both runs")
st.subheader("Without the scheduler")
config, valid = config_controls("flow_class_constant_lr", train_set)
training_panel(config, key="constant_lr", log_y=True, ready=valid)
scheduled_config = scheduled_counterpart(config)
st.subheader("The scheduled run it is compared with")
st.caption(f"The same settings with the spec's learning rate {scheduled_config.lr:g} and ExponentialLR: "
           f"{settings_text(scheduled_config, detailed=True)}.")
training_panel(scheduled_config, key="constant_lr_scheduled", log_y=True, ready=valid)
constant, constant_note = run_to_show("flow_class_constant_lr", config)
scheduled, scheduled_note = run_to_show("flow_class", scheduled_config)

with compensation:
    st.header("1 · The compensation")
    shown = constant.config if constant is not None else config
    c1, c2 = st.columns([2, 3])
    c1.dataframe(rates_table(shown).style.format("{:.2e}"))
    c2.markdown(compensation_text(shown))

st.header("3 · Results")
if constant is None or scheduled is None:
    no_model_yet("run " + ("without the scheduler" if constant is None else "with the scheduler"),
                 "flow_class_constant_lr" if constant is None else "flow_class")
provenance_caption(constant, f"Without the scheduler: {constant_note}")
provenance_caption(scheduled, f"With the scheduler: {scheduled_note}")
st.plotly_chart(loss_comparison_figure({"with ExponentialLR": scheduled.losses,
                                        f"constant lr {constant.config.lr:g}": constant.losses}),
                key="constant_lr_losses")

st.header("4 · Does it match?")
c1, c2 = st.columns(2)
steps = euler_steps_control("constant_lr_steps", class_flow.DEFAULTS.steps, class_flow.DEFAULTS.steps_slow_cpu,
                            container=c1)
with c2:
    seed = seed_control("constant_lr_seed").value
runs = {"with ExponentialLR": scheduled, f"constant lr {constant.config.lr:g}": constant}
samples = {name: draw_samples(common.flow_of(run), common.run_cache_id(run), steps, seed) for name, run in runs.items()}
for column, (name, run) in zip(layout.columns(2), runs.items()):
    layout.image(grid_of(samples[name], run.config.model),
                 f"{name} · digits 0–9, 4 each · γ = {GUIDANCE_SCALE:g}, {steps} Euler steps, seed {seed}", column)
classifier, real = common.digit_judge()
read = {name: grid_quality(samples[name], classifier) for name in runs}
numbers = pd.DataFrame({
    "mean training loss, last epoch": [last_epoch_loss(run) for run in runs.values()],
    f"loss on {DEFAULTS.held_out_digits:,} test digits": [test_loss(common.run_cache_id(r), r, test_set) for r in runs.values()],
    "grid read as asked": [read[name].agrees for name in runs],
    "grid read confidently": [read[name].confident for name in runs]}, index=list(runs))
st.table(numbers.style.format("{:.4f}", subset=numbers.columns[:2]).format("{:.0%}", subset=numbers.columns[2:]))
st.caption("Both grids start from the same noise. The test loss is each model's training objective on test digits it "
           f"never saw, with the same noise, times and class dropout for both (seed {DEFAULTS.held_out_seed}). "
           + judge_text(real, len(train_set)))

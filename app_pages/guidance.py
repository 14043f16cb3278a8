"""1.5 – 1.6 · Sampling from pure noise and classifier-free guidance."""

import plotly.graph_objects as go
import streamlit as st

from lib.media.images import grid
from lib.media.plots import margins
from lib.media.text import quoted_prompt
from ui import layout
from ui.backend import StepProgress, prompt_ok, seed_control, stride_control
from ui.layout import download_png
from ui.common import counted
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, prompt_input, show
from ui.sections.guidance import DEFAULTS, diversity, guidance_sweep
from ui.sections import BY_SLUG

backend = page_setup(
    "guidance",
    [r"x_T \sim \mathcal{N}(0, I), \qquad x_{t'} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta_t}{1-\bar\alpha_t}\hat x_0"
     r" + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}x_t + v_\sigma",
     r"\varepsilon = \varepsilon_u + \gamma\,(\varepsilon_c - \varepsilon_u)"],
    "Start from pure Gaussian noise and run the iterative denoiser all the way down (adding the fresh noise v_σ "
    f"at every step, as in {BY_SLUG['iterative'].number}): that *is* sampling. "
    "**Classifier-free guidance** runs the model twice per step — with the prompt (ε_c) and with the empty prompt "
    "(ε_u) — and extrapolates from the unconditional towards the conditional estimate. γ = 0 ignores the prompt, "
    "γ = 1 is the plain conditional model, γ > 1 gives cleaner, more typical images that vary less. Every column "
    "below starts from **the same noise** (same seed), so only γ differs.",
)

c1, c2, c3 = st.columns([3, 2, 2])
prompt = prompt_input("Prompt", backend.defaults.prompt, "guidance_prompt", backend.family, container=c1,
                      help="MNIST: a digit (\"7\", \"seven\", \"a handwritten 7\"). IF: any text. " + EMPTY_PROMPT_HELP)
scales = c1.multiselect("Guidance scale γ", DEFAULTS.options, default=list(DEFAULTS.scales), key="guidance_scales",
                        format_func=lambda g: f"{g:g}")
with c2:
    num_samples = st.slider("Samples per γ", 1, 16, DEFAULTS.samples, key="guidance_samples")
    stride = stride_control(backend, key="guidance_stride")
with c3:
    seed = seed_control("guidance_seed").value

if not scales:
    st.error("Pick at least one guidance scale.")
elif prompt_ok(backend, prompt):
    scales = tuple(sorted(scales))
    steps = len(backend.model.timesteps(stride)) - 1
    progress = StepProgress(steps * len(scales), f"Sampling {len(scales)} × {num_samples} images:")
    result, cost = guidance_sweep(backend.cache_id, prompt, scales, num_samples, stride, seed, backend.model, progress)
    progress.done()
    st.caption(f"{counted(steps, 'denoising step')} (stride {stride}), seed {seed}, prompt: {quoted_prompt(prompt)}.")
    cost_caption(cost, f"{counted(num_samples, 'sample')} per call, one γ after another, × 2 for CFG except at "
                       "γ = 1 and, on a model without learned variance, γ = 0: one pass each", progress)
    cols = layout.columns(len(scales))
    ncols = 2 if num_samples > 1 else 1
    for col, scale, images in zip(cols, scales, result):
        col.markdown(f"**γ = {scale:g}**")
        show(images, ncols=ncols, container=col, target_px=90)
    if num_samples > 1:
        fig = go.Figure(go.Scatter(x=list(scales), y=diversity(result), mode="lines+markers"))
        fig.update_layout(height=260, margin=margins(text_above=True), xaxis_title="guidance scale γ",
                          yaxis_title="pixel std across samples", title="Diversity of the samples")
        st.plotly_chart(fig)
    picture = grid(result.flatten(0, 1), num_samples, upscale=2)
    download_png(picture, f"cfg_{backend.family}_seed{seed}.png", "Download all (one row per γ)")

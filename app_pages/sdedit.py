"""1.7, 1.7.1, 1.7.3 · Image-to-image translation with SDEdit."""

import streamlit as st
import torch

from lib.media.images import grid
from ui import layout
from ui.backend import StepProgress, prompt_ok, seed_control, stride_control
from ui.layout import download_png
from ui.part_a import DEFAULT_DIGIT, cost_caption, edit_prompt_input, image_and_controls, page_setup, show, with_cfg
from ui.sections.sdedit import COURSE, DEFAULTS, noise_level, sdedit_sweep, strip_statement

backend = page_setup(
    "sdedit",
    [r"x_{t_{i}} = \sqrt{\bar\alpha_{t_i}}\,x_{\text{orig}} + \sqrt{1-\bar\alpha_{t_i}}\,\varepsilon,"
     r"\qquad t_i = \text{timesteps}[i_\text{start}]",
     r"\text{then denoise } t_i \to t_{i+1} \to \dots \to 0 \text{ with } "
     r"\varepsilon = \varepsilon_u + \gamma\,(\varepsilon_c - \varepsilon_u)"],
    "SDEdit *projects* an image onto what the model considers natural images: add noise, then let the model denoise "
    "it. The noise destroys detail but keeps the rough layout, so the model fills in new detail that fits. A **small "
    "i_start** starts at high noise — a big, creative edit; a **large i_start** starts at low noise and stays close "
    "to the original. It works on photos, uploads and your own sketches (1.7.1), and with a different prompt it "
    "steers the edit (1.7.3). On MNIST the page opens on such an edit, the test digit "
    f"{DEFAULT_DIGIT} towards the prompt {DEFAULTS['mnist'].text_edit!r}: small i_starts redraw it as a "
    f"{DEFAULTS['mnist'].text_edit}, a large one keeps the {DEFAULT_DIGIT}.",
)
d = DEFAULTS[backend.family]

picked, right = image_and_controls(backend, "sdedit")
with right:
    prompt = edit_prompt_input(backend, picked, "sdedit", "IF: \"a high quality photo\" projects onto photos; any "
                                                          "other text steers the edit. MNIST: a digit; the picked "
                                                          "digit's own label projects onto that digit.",
                               default=d.text_edit if d.opens_on_text_edit else None)
    i_starts = st.multiselect("i_start values", list(range(COURSE.max_i_start + 1)), default=list(COURSE.i_starts),
                              key="sdedit_istarts", persist_state="session",
                              help="Indices into the strided timesteps; the course uses 1, 3, 5, 7, 10, 20.")
    c1, c2, c3 = st.columns(3)
    scale = c1.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5,
                      key=f"sdedit_scale_{backend.family}", persist_state="session")
    with c2:
        stride = stride_control(backend, key="sdedit_stride")
    with c3:
        seed = seed_control("sdedit_seed").value

ts = backend.model.timesteps(stride)
valid = sorted(i for i in i_starts if i <= len(ts) - 2)
skipped = sorted(set(i_starts) - set(valid))
if skipped:
    st.warning(f"i_start {', '.join(map(str, skipped))} skipped: with stride {stride} there are {len(ts)} timesteps, "
               f"so i_start can be at most {len(ts) - 2}.")
if not valid:
    st.error(f"No valid i_start: pick values between 0 and {len(ts) - 2} (or a smaller stride).")
elif picked is not None and prompt_ok(backend, prompt):
    steps_each = [len(ts) - 1 - i for i in valid]
    progress = StepProgress(steps_each[0], "SDEdit (all i_starts in one batch):")
    result, cost = sdedit_sweep(backend.cache_id, picked.array, prompt, scale, tuple(valid), stride, seed,
                                backend.model, progress)
    progress.done()
    st.markdown(strip_statement(ts, valid, stride))
    cols = layout.columns(len(valid) + 1)
    for col, i, k, image in zip(cols, valid, steps_each, result):
        caption = f"i_start = {i}: runs {k} of {len(ts) - 1} steps from t = {ts[i]} (noise {noise_level(backend.model, ts[i]):.2f})"
        show(image, container=col, caption=caption, target_px=110)
    show(picked.tensor(), container=cols[-1], caption=f"original ({picked.caption})", target_px=110)
    download_png(grid(torch.cat([result, picked.tensor()]), len(valid) + 1, upscale=max(1, 128 // backend.size)),
                 f"sdedit_seed{seed}.png", "Download the row")
    cost_caption(cost, f"Σ K = {sum(steps_each)} image-steps{with_cfg(cost, sum(steps_each))}", progress)

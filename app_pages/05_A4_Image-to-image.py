"""A4 · Image-to-image translation with SDEdit (spec 1.7, 1.7.1 and 1.7.3)."""

import streamlit as st
import torch

from lib.edits import sdedit
from lib.images import grid
from ui import layout
from ui.backend import StepProgress, download_png, prompt_ok, seed_control, stride_control
from ui.part_a import EMPTY_PROMPT_HELP, page_setup, pick_image, prompt_input, show

backend = page_setup(
    "1.7, 1.7.1, 1.7.3 · Image-to-image (SDEdit)",
    [r"x_{t_{i}} = \sqrt{\bar\alpha_{t_i}}\,x_{\text{orig}} + \sqrt{1-\bar\alpha_{t_i}}\,\varepsilon,"
     r"\qquad t_i = \text{timesteps}[i_\text{start}]",
     r"\text{then denoise } t_i \to t_{i+1} \to \dots \to 0 \text{ with } "
     r"\varepsilon = \varepsilon_u + \gamma\,(\varepsilon_c - \varepsilon_u)"],
    "SDEdit *projects* an image onto what the model considers natural images: add noise, then let the model denoise "
    "it. The noise destroys detail but keeps the rough layout, so the model fills in new detail that fits. A **small "
    "i_start** starts at high noise — a big, creative edit; a **large i_start** starts at low noise and stays close "
    "to the original. It works on photos, uploads and your own sketches (1.7.1), and with a different prompt it "
    "steers the edit (1.7.3) — on MNIST, try turning a 3 into an 8.",
)

COURSE_I_STARTS = [1, 3, 5, 7, 10, 20]


@st.cache_data(show_spinner=False, max_entries=32)
def sdedit_sweep(backend_key: str, image, prompt: str, scale: float, i_starts: tuple[int, ...], stride: int,
                 seed: int, _den, _on_step=None) -> torch.Tensor:
    """One SDEdit per i_start, each from the same seed: (len(i_starts), C, H, W)."""
    x = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype)
    cond = _den.encode_prompt(prompt)
    out = []
    for i_start in i_starts:
        gen = torch.Generator(device=_den.device).manual_seed(seed)
        out.append(sdedit(_den, x, cond=cond, scale=scale, i_start=i_start, stride=stride, generator=gen,
                          on_step=_on_step).float().cpu())
    return torch.cat(out)


left, right = st.columns([2, 3])
with left:
    picked = pick_image(backend, "a4")
with right:
    default_prompt = backend.defaults.edit_prompt(None if picked is None else picked.digit)
    prompt = prompt_input("Prompt", default_prompt, "a4_prompt",
                          help="IF: \"a high quality photo\" projects onto photos; any other text steers the edit. "
                               "MNIST: a digit. " + EMPTY_PROMPT_HELP)
    i_starts = st.multiselect("i_start values", list(range(0, 40)), default=COURSE_I_STARTS, key="a4_istarts",
                              help="Indices into the strided timesteps; the course uses 1, 3, 5, 7, 10, 20.")
    c1, c2, c3 = st.columns(3)
    scale = c1.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5,
                      key=f"a4_scale_{backend.kind}")
    with c2:
        stride = stride_control(backend, key="a4_stride")
    with c3:
        seed = seed_control("a4_seed")

ts = backend.denoiser.timesteps(stride)
valid = sorted(i for i in i_starts if i <= len(ts) - 2)
skipped = sorted(set(i_starts) - set(valid))
if skipped:
    st.warning(f"i_start {', '.join(map(str, skipped))} skipped: with stride {stride} there are {len(ts)} timesteps, "
               f"so i_start can be at most {len(ts) - 2}.")
if not valid:
    st.error(f"No valid i_start: pick values between 0 and {len(ts) - 2} (or a smaller stride).")
elif picked is not None and prompt_ok(backend, prompt):
    progress = StepProgress(sum(len(ts) - 1 - i for i in valid), "SDEdit:")
    result = sdedit_sweep(backend.key, picked.array, prompt, scale, tuple(valid), stride, seed, backend.denoiser,
                          progress)
    progress.done()
    cols = layout.columns(len(valid) + 1)
    for col, i, image in zip(cols, valid, result):
        show(image, container=col, caption=f"i_start = {i} (t = {ts[i]})", target_px=110)
    show(picked.tensor(), container=cols[-1], caption=f"original ({picked.caption})", target_px=110)
    download_png(grid(torch.cat([result, picked.tensor()]), len(valid) + 1, upscale=max(1, 128 // backend.size)),
                 f"sdedit_seed{seed}.png", "Download the row")

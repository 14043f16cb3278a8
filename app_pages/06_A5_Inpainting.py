"""A5 · Inpainting with RePaint (spec 1.7.2)."""

import streamlit as st
import torch

from lib.costs import counts_cost
from lib.edits import inpaint
from lib.images import grid
from ui.backend import StepProgress, download_png, prompt_ok, seed_control, stride_control
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, pick_image, pick_mask, prompt_input, show, with_cfg

backend = page_setup(
    "1.7.2 · Inpainting",
    r"x_{t'} \leftarrow \mathbf{m} \odot x_{t'} + (1 - \mathbf{m}) \odot "
    r"\left(\sqrt{\bar\alpha_{t'}}\,x_{\text{orig}} + \sqrt{1-\bar\alpha_{t'}}\,\varepsilon\right)",
    "Inpainting regenerates only part of an image (where the mask **m = 1**) and keeps the rest. RePaint does it with "
    "the ordinary sampling loop from pure noise plus one line: after every step, the pixels outside the mask are "
    "replaced by the original image noised to the *same* timestep t' (fresh noise each time), so the model always "
    "sees a consistent picture and fills the hole with content that fits its surroundings. Paint the mask over the "
    "image, or use a preset.",
)


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def inpaint_samples(backend_key: str, image, mask, prompt: str, scale: float, num_samples: int, stride: int,
                    seed: int, _den, _on_step=None) -> torch.Tensor:
    """``num_samples`` inpaintings of the same image and mask, in one batch: (N, C, H, W)."""
    x = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype).expand(num_samples, -1, -1, -1)
    m = torch.from_numpy(mask).to(_den.device, _den.dtype)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return inpaint(_den, x, m, cond=_den.encode_prompt(prompt), scale=scale, stride=stride, generator=gen,
                   on_step=_on_step).float().cpu()


left, right = st.columns([2, 3])
with left:
    picked = pick_image(backend, "a5")
    mask = pick_mask(backend, picked, "a5") if picked is not None else None
with right:
    default_prompt = backend.defaults.edit_prompt(None if picked is None else picked.digit)
    prompt = prompt_input("Prompt", default_prompt, "a5_prompt",
                          help="What to put in the hole. MNIST: a digit. " + EMPTY_PROMPT_HELP)
    c1, c2 = st.columns(2)
    scale = c1.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5,
                      key=f"a5_scale_{backend.kind}")
    num_samples = c2.slider("Samples", 1, 8, 4, key="a5_samples")
    c3, c4 = st.columns(2)
    with c3:
        stride = stride_control(backend, key="a5_stride")
    with c4:
        seed = seed_control("a5_seed")

if picked is not None and mask is not None and prompt_ok(backend, prompt):
    steps = len(backend.denoiser.timesteps(stride)) - 1
    progress = StepProgress(steps, "Inpainting:")
    result, cost = inpaint_samples(backend.key, picked.array, mask, prompt, scale, num_samples, stride, seed,
                             backend.denoiser, progress)
    progress.done()
    x, m = picked.tensor(), torch.from_numpy(mask)
    hole = torch.tensor([1.0, -1.0, -1.0] if x.shape[1] == 3 else [0.0]).view(1, -1, 1, 1)  # red / mid-grey
    masked = x * (1 - m) + m * hole
    c1, c2 = st.columns([1, 2])
    with c1:
        show(torch.cat([x, masked]), ncols=2, caption="original · region to regenerate", target_px=110)
    with c2:
        show(result, ncols=num_samples, caption=f"{num_samples} inpaintings (seed {seed})", target_px=110)
    cost_caption(cost, f"{num_samples} samples per call{with_cfg(cost, cost.calls * num_samples)}", progress)
    kept = (result - x).abs().mul(1 - m).amax().item()
    st.metric("Largest change outside the mask", f"{kept:.3f}",
              help="RePaint's last step puts the original back wherever m = 0, so this is exactly 0.")
    download_png(grid(torch.cat([x, masked, result]), num_samples + 2, upscale=max(1, 128 // backend.size)),
                 f"inpaint_seed{seed}.png", "Download")

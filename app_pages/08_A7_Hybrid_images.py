"""A7 · Hybrid images by factorized diffusion (spec 1.9)."""

import streamlit as st
import torch

from lib.costs import counts_cost
from lib.edits import hybrid_predictor, sample_with
from lib.filters import detail_as_ink, lowpass
from lib.images import grid
from ui.backend import StepProgress, download_png, prompt_ok
from ui.common import counted
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, prompt_input, samples_stride_seed, show, with_cfg

backend = page_setup(
    "1.9 · Hybrid images",
    [r"\varepsilon = \operatorname{lowpass}(\varepsilon_1) + \operatorname{highpass}(\varepsilon_2),",
     r"\varepsilon_i = \text{CFG-UNet}(x_t, t, p_i), \quad \operatorname{lowpass} = G_{k,\sigma} * \cdot, "
     r"\quad \operatorname{highpass} = \mathrm{id} - \operatorname{lowpass}"],
    "A hybrid image shows one thing from far away and another up close: our eyes see only the coarse shapes (low "
    "frequencies) of a small or distant picture and the fine detail (high frequencies) of a near one. Factorized "
    "diffusion builds one directly: at every step the noise estimate takes its **low frequencies from prompt 1** and "
    "its **high frequencies from prompt 2** (a Gaussian blur with kernel k and width σ splits them). The spec uses "
    "k = 33, σ = 2 for 64-px images; the defaults here are sized for the backend's images.",
)


@st.cache_data(show_spinner=False, max_entries=32)
def filter_limits(size: int) -> tuple[int, float]:
    """The kernel and σ sliders' ends for ``size``-px images: the largest odd kernel inside the image, and σ up to
    size / 8 (wider, the low-pass of a whole image is one blob)."""
    return (size - 1) | 1, size / 8


@counts_cost
def hybrids(backend_key: str, prompt_low: str, prompt_high: str, kernel: int, sigma: float, scale: float,
            num_samples: int, stride: int, seed: int, _den, _on_step=None) -> torch.Tensor:
    """(N, C, H, W) hybrids; both prompts (and both CFG halves) in one batched model call per step."""
    predict = hybrid_predictor(_den, _den.encode_prompt(prompt_low), _den.encode_prompt(prompt_high), scale,
                               kernel_size=kernel, sigma=sigma)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return sample_with(_den, predict, num_samples=num_samples, stride=stride, generator=gen,
                       on_step=_on_step).float().cpu()


low_default, high_default = backend.defaults.hybrid
c1, c2 = st.columns(2)
prompt_low = prompt_input("Prompt 1: seen from far (low frequencies)", low_default, "a7_low", container=c1,
                          help=EMPTY_PROMPT_HELP)
prompt_high = prompt_input("Prompt 2: seen up close (high frequencies)", high_default, "a7_high", container=c2,
                           help=EMPTY_PROMPT_HELP)
kernel_default, sigma_default = backend.defaults.hybrid_filter
kernel_max, sigma_max = filter_limits(backend.size)
c3, c4, c5 = st.columns(3)
kernel = c3.slider("Kernel size k", 3, kernel_max, kernel_default, step=2, key=f"a7_kernel_{backend.kind}",
                   help=f"Default {kernel_default} for {backend.size}-px images (the spec's 33 for 64 px); the "
                        "Gaussian is cut off beyond ±k/2 pixels.")
sigma = c4.slider("σ", 0.5, sigma_max, sigma_default, step=0.1, key=f"a7_sigma_{backend.kind}",
                  help=f"Default {sigma_default} for {backend.size}-px images (the spec's 2 for 64 px). Larger σ "
                       "gives prompt 2 more of the image, smaller σ prompt 1.")
scale = c5.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.hybrid_guidance, step=0.5,
                  key=f"a7_scale_{backend.kind}")
num_samples, stride, seed = samples_stride_seed(backend, "a7")

if prompt_ok(backend, prompt_low, field="Prompt 1") and prompt_ok(backend, prompt_high, field="Prompt 2"):
    steps = len(backend.denoiser.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling hybrids:")
    result, cost = hybrids(backend.key, prompt_low, prompt_high, kernel, sigma, scale, num_samples, stride, seed,
                           backend.denoiser, progress)
    progress.done()
    st.markdown(f"**Up close**: should read as {prompt_high!r}")
    show(result, ncols=num_samples, target_px=backend.defaults.display_px)
    cost_caption(cost, f"{counted(num_samples, 'sample')} × 2 prompts per call"
                       f"{with_cfg(cost, cost.calls * num_samples * 2)}", progress)
    st.markdown(f"**From far**: should read as {prompt_low!r}")
    show(lowpass(result, kernel, sigma), ncols=num_samples, target_px=backend.defaults.display_px,
         caption="What a distant eye resolves: the low-pass of the images above, shown enlarged (or step back from "
                 "the screen and look at the top row).")
    with st.expander("Prompt 2's part: the high-pass"):
        show(detail_as_ink(result, kernel, sigma), ncols=num_samples, target_px=110,
             caption="image − lowpass(image), its positive part as ink on black")
    download_png(grid(result, num_samples, upscale=max(1, 128 // backend.size)), f"hybrid_seed{seed}.png", "Download")

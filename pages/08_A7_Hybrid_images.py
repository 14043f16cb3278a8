"""A7 · Hybrid images by factorized diffusion (spec 1.9)."""

import streamlit as st
import torch

from lib.edits import hybrid_predictor, sample_with
from lib.filters import highpass, lowpass
from lib.images import grid
from ui.backend import StepProgress, download_png, prompt_ok
from ui.part_a import EMPTY_PROMPT_HELP, page_setup, prompt_input, samples_stride_seed, show

backend = page_setup(
    "A7 · Hybrid images",
    [r"\varepsilon = \operatorname{lowpass}(\varepsilon_1) + \operatorname{highpass}(\varepsilon_2),",
     r"\varepsilon_i = \text{CFG-UNet}(x_t, t, p_i), \quad \operatorname{lowpass} = G_{k,\sigma} * \cdot, "
     r"\quad \operatorname{highpass} = \mathrm{id} - \operatorname{lowpass}"],
    "A hybrid image shows one thing from far away and another up close: our eyes see only the coarse shapes (low "
    "frequencies) of a small or distant picture and the fine detail (high frequencies) of a near one. Factorized "
    "diffusion builds one directly: at every step the noise estimate takes its **low frequencies from prompt 1** and "
    "its **high frequencies from prompt 2** (a Gaussian blur with kernel k and width σ splits them). The spec uses "
    "k = 33, σ = 2 for 64-px images.",
)



@st.cache_data(show_spinner=False, max_entries=32)
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
small_hint = " On 28-px MNIST digits try smaller values, e.g. kernel 9 and σ 1.5." if not backend.is_if else ""
c3, c4, c5 = st.columns(3)
kernel = c3.slider("Kernel size k", 3, 33, 33, step=2, key="a7_kernel",
                   help="Spec default 33 (reflect padding; only a kernel wider than twice the image is clipped)."
                   + small_hint)
sigma = c4.slider("σ", 0.5, 6.0, 2.0, step=0.1, key="a7_sigma", help="Spec default 2." + small_hint)
scale = c5.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5, key=f"a7_scale_{backend.kind}")
num_samples, stride, seed = samples_stride_seed(backend, "a7")

if prompt_ok(backend, prompt_low, field="Prompt 1") and prompt_ok(backend, prompt_high, field="Prompt 2"):
    steps = len(backend.denoiser.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling hybrids:")
    result = hybrids(backend.key, prompt_low, prompt_high, kernel, sigma, scale, num_samples, stride, seed,
                     backend.denoiser, progress)
    progress.done()
    c1, c2 = st.columns([1, 4])
    with c1:
        st.markdown(f"**From far** ({backend.size} px, actual size)")
        show(result, ncols=2, target_px=backend.size)
        st.caption(f"should read as {prompt_low!r}")
    with c2:
        st.markdown("**Up close**")
        show(result, ncols=num_samples, target_px=backend.defaults.display_px)
        st.caption(f"should read as {prompt_high!r}")
    with st.expander("The two halves of the result"):
        show(torch.cat([lowpass(result, kernel, sigma), highpass(result, kernel, sigma) * 2]), ncols=num_samples,
             target_px=110, caption="top: lowpass (prompt 1's part) · bottom: highpass ×2 (prompt 2's part)")
    download_png(grid(result, num_samples, upscale=max(1, 128 // backend.size)), f"hybrid_seed{seed}.png", "Download")

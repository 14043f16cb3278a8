"""A7 · Hybrid images by factorized diffusion (spec 1.9)."""

from dataclasses import dataclass

import streamlit as st
import torch

from lib.filters import Decomposition, detail_as_ink, frequency_response, lowpass
from lib.images import grid
from lib.plots import band_response_figure
from ui.backend import StepProgress, download_png, prompt_ok
from ui.common import counted
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, prompt_input, samples_stride_seed, show, with_cfg
from ui.pieces import COLOUR, MOTION, THREE, TWO, decomposition, factorized

backend = page_setup(
    "hybrids",
    [r"\varepsilon = \operatorname{lowpass}(\varepsilon_1) + \operatorname{highpass}(\varepsilon_2),",
     r"\varepsilon_i = \text{CFG-UNet}(x_t, t, p_i), \quad \operatorname{lowpass} = G_{k,\sigma} * \cdot, "
     r"\quad \operatorname{highpass} = \mathrm{id} - \operatorname{lowpass}"],
    "A hybrid image shows one thing from far away and another up close: our eyes see only the coarse shapes (low "
    "frequencies) of a small or distant picture and the fine detail (high frequencies) of a near one. Factorized "
    "diffusion builds one directly: at every step the noise estimate takes its **low frequencies from prompt 1** and "
    "its **high frequencies from prompt 2** (a Gaussian blur with kernel k and width σ splits them). The spec uses "
    "k = 33, σ = 2 for 64-px images; the defaults here are sized for the backend's images. More generally (Geng et al. "
    "2024) any linear filters f₁ … f_N that add up to the identity share the image out, ε = Σᵢ fᵢ(εᵢ): pick the "
    "decomposition below.",
)


def filter_limits(size: int) -> tuple[int, float]:
    """The kernel and σ sliders' ends for ``size``-px images: the largest odd kernel inside the image, and σ up to
    size / 8 (wider, the low-pass of a whole image is one blob)."""
    return (size - 1) | 1, size / 8


@dataclass(frozen=True)
class Choice:
    """One decomposition on the page: its prompts (label, widget key) in filter order and its formula."""

    prompts: tuple[tuple[str, str], ...]
    formula: str
    rgb_only: bool = False


CHOICES = {
    TWO: Choice((("Prompt 1: seen from far (low frequencies)", "a7_low"),
                 ("Prompt 2: seen up close (high frequencies)", "a7_high")),
                r"\varepsilon = G_\sigma * \varepsilon_1 + (\varepsilon_2 - G_\sigma * \varepsilon_2)"),
    THREE: Choice((("Prompt 1: from far (low band)", "a7_low3"), ("Prompt 2: at arm's length (middle band)", "a7_mid3"),
                   ("Prompt 3: up close (high band)", "a7_high3")),
                  r"\varepsilon = G_{\sigma_2} * \varepsilon_1 + (G_{\sigma_1} - G_{\sigma_2}) * \varepsilon_2 "
                  r"+ (\varepsilon_3 - G_{\sigma_1} * \varepsilon_3), \quad \sigma_1 < \sigma_2"),
    COLOUR: Choice((("Prompt 1: the greyscale image", "a7_grey"), ("Prompt 2: its colours", "a7_colour")),
                   r"\varepsilon = \operatorname{grey}(\varepsilon_1) + (\varepsilon_2 - \operatorname{grey}"
                   r"(\varepsilon_2)), \quad \operatorname{grey}(x)_c = \tfrac13 \textstyle\sum_{c'} x_{c'}", True),
    MOTION: Choice((("Prompt 1: seen motion-blurred", "a7_blur"), ("Prompt 2: the residual (sharp detail)",
                                                                   "a7_residual")),
                   r"\varepsilon = B_L * \varepsilon_1 + (\varepsilon_2 - B_L * \varepsilon_2), \quad "
                   r"B_L = \text{box of } L \text{ pixels along a line}", True),
}
# The prompts of the new decompositions, per kind of backend (the 2-band's are BackendDefaults.hybrid).
PROMPTS = {
    "mnist": {THREE: ("0", "5", "1")},
    "if": {THREE: ("a lithograph of a skull", "a lithograph of waterfalls", "a lithograph of a rocket ship"),
           COLOUR: ("a watercolor of a rabbit", "a watercolor of a field of flowers"),
           MOTION: ("a photo of a horse", "a photo of a city street at night")},
}
TRIPLE_SIGMAS = {"mnist": (1.0, 2.0), "if": (1.0, 3.0)}  # σ1, σ2
TRIPLE_NOTE = ("Triple hybrids need the larger IF model: a 28-px digit has no room for three bands. Measured "
               "on 28 runs (digit triples such as 0/5/1, 6/2/1, 0/4/7; σ1/σ2 from 0.75/1.5 to 2/4, γ 7, 8 samples "
               "each): as σ grows the image moves from the far digit to the near one, and no sample read right at "
               "all three distances (bench/RESULTS.md, \"A7 triple hybrids on MNIST\").")


def filter_params(choice: str) -> tuple:
    """The sliders of ``choice``, sized to the backend's images; returns its ``decomposition`` parameters."""
    if choice == COLOUR:
        return ()
    if choice == MOTION:
        c1, c2 = st.columns(2)
        length = c1.slider("Blur length L (pixels)", 3, backend.size // 2 | 1, backend.size // 8 | 1, step=2,
                           key=f"a7_length_{backend.kind}", help="How far the camera moves while the shutter is open.")
        return length, c2.toggle("Diagonal motion", key="a7_diagonal")
    kernel_default, sigma_default = backend.defaults.hybrid_filter
    kernel_max, sigma_max = filter_limits(backend.size)
    c3, c4 = st.columns(2)
    kernel = c3.slider("Kernel size k", 3, kernel_max, kernel_default, step=2, key=f"a7_kernel_{backend.kind}",
                       help=f"Default {kernel_default} for {backend.size}-px images (the spec's 33 for 64 px); the "
                            "Gaussian is cut off beyond ±k/2 pixels.")
    if choice == THREE:
        sigmas = c4.slider("σ1 < σ2", 0.5, sigma_max, TRIPLE_SIGMAS[backend.kind], step=0.1,
                           key=f"a7_sigmas_{backend.kind}", help="Prompt 3 owns what G_σ1 removes, prompt 1 what G_σ2 "
                                                                 "keeps, prompt 2 the band between.")
        return kernel, *sigmas
    sigma = c4.slider("σ", 0.5, sigma_max, sigma_default, step=0.1, key=f"a7_sigma_{backend.kind}",
                      help=f"Default {sigma_default} for {backend.size}-px images (the spec's 2 for 64 px). Larger σ "
                           "gives prompt 2 more of the image, smaller σ prompt 1.")
    return kernel, sigma


def show_bands(choice: str, dec: Decomposition) -> None:
    """The filters' measured responses against frequency: which part of the image each prompt controls."""
    freqs, responses = frequency_response(dec, backend.size, backend.channels)
    st.plotly_chart(band_response_figure(freqs, responses, [f"prompt {i + 1}: {label}" for i, label in
                                                            enumerate(dec.labels)]))
    st.caption("Each filter applied to a one-pixel impulse, Fourier-transformed and averaged over rings of equal "
               "frequency; at every frequency the responses add up to 1." + (
                   " Colour vs greyscale splits the channels, not the frequencies: an impulse in the red channel "
                   "goes 1/3 to the grey part and 2/3 to the colour part at every frequency." if choice == COLOUR
                   else ""))


def show_step_back(result: torch.Tensor, kernel: int, sigma_far: float, far_prompt: str) -> None:
    """The result as seen from further away: G_s * result, s from 0 (up close) to the decomposition's strongest
    low-pass σ (only prompt 1's band left); it starts at the far end, where only prompt 1 should read."""
    s = st.slider("Step back: blur σ", 0.0, float(sigma_far), float(sigma_far), step=0.1, key="a7_step_back",
                  help="0 is the image up close; the end is the strongest low-pass of the decomposition.")
    st.markdown(f"**From far**: should read as {far_prompt!r}" if s == sigma_far else f"**Blurred by σ = {s:.1f}**")
    show(lowpass(result, kernel, s), ncols=len(result), target_px=backend.defaults.display_px,
         caption="What a distant eye resolves: the images above blurred, shown enlarged (or step back from the "
                 "screen and look at the top row).")


def prompt_defaults(choice: str) -> tuple[str, ...]:
    return backend.defaults.hybrid if choice == TWO else PROMPTS[backend.kind][choice]


def show_parts(result: torch.Tensor, choice: str, dec: Decomposition, params: tuple) -> None:
    """Each prompt's part f_i(result); a frequency band's detail as ink on black (a signed high-pass shown as is is
    mid-grey that no one reads)."""
    if choice in (TWO, THREE):
        kernel, sigma_fine = params[0], params[1]
        show(detail_as_ink(result, kernel, sigma_fine), ncols=len(result), target_px=110,
             caption=f"Prompt {len(dec.filters)}'s part: image − G_σ{'1' if choice == THREE else ''} * image, its "
                     "positive part as ink on black")
        return
    for i, (label, part) in enumerate(zip(dec.labels, dec.parts(result))):
        show(part.clamp(-1, 1), ncols=len(result), target_px=110, caption=f"Prompt {i + 1}'s part: the {label}")


options = [name for name, c in CHOICES.items() if backend.channels == 3 or not c.rgb_only]
choice = st.selectbox("Decomposition", options, key=f"a7_decomposition_{backend.kind}",
                      help="Which linear filters split the image between the prompts (they always add up to the "
                           "identity). Colour vs greyscale and motion blur need 3-channel images: DeepFloyd IF."
                           if backend.channels == 1 else "Which linear filters split the image between the prompts.")
st.latex(CHOICES[choice].formula)
if choice == THREE and backend.kind == "mnist":
    st.info(TRIPLE_NOTE)
columns = st.columns(len(CHOICES[choice].prompts))
prompts = tuple(prompt_input(label, default, key, backend.kind, container=col, help=EMPTY_PROMPT_HELP)
                for (label, key), default, col in zip(CHOICES[choice].prompts, prompt_defaults(choice), columns))
params = filter_params(choice)
dec = decomposition(choice, params)
scale = st.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.hybrid_guidance, step=0.5,
                  key=f"a7_scale_{backend.kind}")
num_samples, stride, seed = samples_stride_seed(backend, "a7")
with st.expander("The bands: what each prompt controls"):
    show_bands(choice, dec)

if all(prompt_ok(backend, p, field=f"Prompt {i + 1}") for i, p in enumerate(prompts)):
    steps = len(backend.denoiser.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling:")
    result, cost = factorized(backend.key, choice, params, prompts, scale, num_samples, stride, seed,
                              backend.denoiser, progress)
    progress.done()
    st.markdown(f"**Up close**: should read as {prompts[-1]!r}" if choice in (TWO, THREE) else "**The result**")
    show(result, ncols=num_samples, target_px=backend.defaults.display_px)
    cost_caption(cost, f"{counted(num_samples, 'sample')} × {len(prompts)} prompts per call"
                       f"{with_cfg(cost, cost.calls * num_samples * len(prompts))}", progress)
    if choice in (TWO, THREE):
        show_step_back(result, params[0], params[-1], prompts[0])
    with st.expander("Each prompt's part" if choice in (COLOUR, MOTION) else f"Prompt {len(prompts)}'s part: the "
                     "high-pass"):
        show_parts(result, choice, dec, params)
    download_png(grid(result, num_samples, upscale=max(1, 128 // backend.size)), f"hybrid_seed{seed}.png", "Download")

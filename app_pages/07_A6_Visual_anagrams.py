"""A6 · Visual anagrams (spec 1.8): one image, two prompts, two views."""

import streamlit as st
import torch

from lib.edits import anagram_predictor, sample_with
from lib.images import grid
from lib.views import VIEWS
from ui.backend import StepProgress, download_png, prompt_ok
from ui.part_a import EMPTY_PROMPT_HELP, page_setup, prompt_input, samples_stride_seed, show

backend = page_setup(
    "1.8 · Visual anagrams",
    [r"\varepsilon_1 = \text{CFG-UNet}(x_t, t, p_1), \qquad "
     r"\varepsilon_2 = v^{-1}\!\left(\text{CFG-UNet}(v(x_t), t, p_2)\right)",
     r"\varepsilon = w\,\varepsilon_1 + (1 - w)\,\varepsilon_2"],
    "A visual anagram looks like prompt 1 as it is and like prompt 2 after a transformation v — in the course, "
    "turned upside down. At every step the model denoises the image as it is (towards p₁) *and* the transformed image "
    "(towards p₂); the second estimate is transformed back and the two are averaged, so the final image satisfies "
    "both. Any view that only moves pixels around (or negates them) works, because it maps noise to noise. When one "
    "prompt dominates, move the weight w.",
)

VIEW_NAMES = [name for name in VIEWS if name != "identity"]


@st.cache_data(show_spinner=False, max_entries=32)
def anagrams(backend_key: str, prompt1: str, prompt2: str, view: str, weight: float, scale: float, num_samples: int,
             stride: int, seed: int, _den, _on_step=None) -> torch.Tensor:
    """(N, C, H, W) anagrams; both views and both CFG halves go through the model in one batched call per step."""
    conds = [_den.encode_prompt(prompt1), _den.encode_prompt(prompt2)]
    predict = anagram_predictor(_den, conds, [VIEWS["identity"], VIEWS[view]], [weight, 1.0 - weight], scale)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return sample_with(_den, predict, num_samples=num_samples, stride=stride, generator=gen,
                       on_step=_on_step).float().cpu()


p1_default, p2_default, view_default = backend.defaults.anagram
c1, c2 = st.columns(2)
prompt1 = prompt_input("Prompt 1 (as generated)", p1_default, "a6_prompt1", container=c1, help=EMPTY_PROMPT_HELP)
prompt2 = prompt_input("Prompt 2 (after the view)", p2_default, "a6_prompt2", container=c2, help=EMPTY_PROMPT_HELP)
c3, c4, c5 = st.columns(3)
st.session_state.setdefault(f"a6_view_{backend.kind}", view_default)
view = c3.selectbox("View v", VIEW_NAMES, key=f"a6_view_{backend.kind}",
                    help="How to look at the image to see prompt 2. The course flips it upside down.")
weight = c4.slider("Weight w of prompt 1", 0.0, 1.0, 0.5, step=0.05, key="a6_weight")
scale = c5.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5, key=f"a6_scale_{backend.kind}")
num_samples, stride, seed = samples_stride_seed(backend, "a6")

if prompt_ok(backend, prompt1, field="Prompt 1") and prompt_ok(backend, prompt2, field="Prompt 2"):
    steps = len(backend.denoiser.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling anagrams:")
    result = anagrams(backend.key, prompt1, prompt2, view, weight, scale, num_samples, stride, seed,
                      backend.denoiser, progress)
    progress.done()
    viewed = VIEWS[view].apply(result)
    flipped = st.toggle(f"Apply the view ({view})", key="a6_flip",
                        help="One click to see the same images the other way.")
    big = viewed if flipped else result
    show(big, ncols=num_samples, target_px=200,
         caption=f"{'after ' + view if flipped else 'as generated'}: should read as {prompt2 if flipped else prompt1!r}")
    st.markdown("**Both ways at once**")
    c1, c2 = st.columns(2)
    show(result, ncols=num_samples, container=c1, target_px=90, caption=f"as generated → {prompt1!r}")
    show(viewed, ncols=num_samples, container=c2, target_px=90, caption=f"{view} → {prompt2!r}")
    download_png(grid(torch.cat([result, viewed]), num_samples, upscale=max(1, 128 // backend.size)),
                 f"anagram_seed{seed}.png", "Download (top: as generated, bottom: viewed)")

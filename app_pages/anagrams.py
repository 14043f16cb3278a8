"""A6 · Visual anagrams (spec 1.8): one image, two prompts, two views."""

import streamlit as st
import torch

from lib.media.images import grid
from lib.media.text import quoted_prompt, reads_as
from lib.techniques.views import VIEWS, patches_per_side
from ui.backend import StepProgress, prompt_ok
from ui.layout import download, download_png
from ui.common import counted
from ui.part_a import EMPTY_PROMPT_HELP, cost_caption, page_setup, prompt_input, samples_stride_seed, show, with_cfg
from ui.sections.anagrams import (DEFAULTS, VIEW_NAMES, Request, anagrams, combining_rule, failing_view_note,
                                  morph_gif, view_help, views_that_break)

backend = page_setup(
    "anagrams",
    [r"\varepsilon_1 = \text{CFG-UNet}(x_t, t, p_1), \qquad "
     r"\varepsilon_2 = v^{-1}\!\left(\text{CFG-UNet}(v(x_t), t, p_2)\right)",
     r"\varepsilon = w\,\varepsilon_1 + (1 - w)\,\varepsilon_2"],
    "A visual anagram looks like prompt 1 as it is and like prompt 2 after a transformation v — in the course, "
    "turned upside down. At every step the model denoises the image as it is (towards p₁) *and* the transformed image "
    "(towards p₂); the second estimate is transformed back and the two are averaged, so the final image satisfies "
    "both. Any view that only moves pixels around (or negates them) works, because it maps noise to noise. When one "
    "prompt dominates, move the weight w. Below the result: the combining rule at one step, the anagram in motion, "
    "and views that break the rule.",
)

d = DEFAULTS[backend.family]
c1, c2 = st.columns(2)
prompt1 = prompt_input("Prompt 1 (as generated)", d.example.prompt1, "anagrams_prompt1", backend.family, container=c1,
                       help=EMPTY_PROMPT_HELP)
prompt2 = prompt_input("Prompt 2 (after the view)", d.example.prompt2, "anagrams_prompt2", backend.family, container=c2,
                       help=EMPTY_PROMPT_HELP)
c3, c4, c5 = st.columns(3)
st.session_state.setdefault(f"anagrams_view_{backend.family}", d.example.view)
view = c3.selectbox("View v", VIEW_NAMES, key=f"anagrams_view_{backend.family}",
                    help=view_help(backend.family, patches_per_side(backend.size)))
weight = c4.slider("Weight w of prompt 1", 0.0, 1.0, d.weight, step=0.05, key="anagrams_weight")
scale = c5.slider("Guidance scale γ", 0.0, 10.0, backend.defaults.guidance, step=0.5, key=f"anagrams_scale_{backend.family}")
num_samples, stride, seed = samples_stride_seed(backend, "anagrams")
if note := failing_view_note(backend.family, view):
    st.warning(note)

if prompt_ok(backend, prompt1, field="Prompt 1") and prompt_ok(backend, prompt2, field="Prompt 2"):
    steps = len(backend.model.timesteps(stride)) - 1
    progress = StepProgress(steps, "Sampling anagrams:")
    r = Request(prompt1=prompt1, prompt2=prompt2, view=view, weight=weight, scale=scale, num_samples=num_samples,
                stride=stride, seed=seed)
    (result, steps_taken), cost = anagrams(backend.cache_id, r, backend.model, progress)
    progress.done()
    cost_caption(cost, f"{counted(num_samples, 'sample')} × 2 views per call"
                       f"{with_cfg(cost, cost.calls * num_samples * 2)}", progress)
    viewed = VIEWS[view].apply(result)
    flipped = st.toggle(f"Apply the view ({view})", key="anagrams_flip",
                        help="One click to see the same images the other way.")
    big = viewed if flipped else result
    show(big, ncols=num_samples, target_px=200,
         caption=f"{'after ' + view if flipped else 'as generated'}: {reads_as(prompt2 if flipped else prompt1)}")
    st.markdown("**Both ways at once**")
    c1, c2 = st.columns(2)
    show(result, ncols=num_samples, container=c1, target_px=90, caption=f"as generated → {quoted_prompt(prompt1)}")
    show(viewed, ncols=num_samples, container=c2, target_px=90, caption=f"{view} → {quoted_prompt(prompt2)}")
    download_png(grid(torch.cat([result, viewed]), num_samples, upscale=max(1, 128 // backend.size)),
                 f"anagram_seed{seed}.png", "Download (top: as generated, bottom: viewed)")

    st.subheader("The combining rule at one step")
    i = st.slider("Step i", 0, steps - 1, steps // 2, key="anagrams_step",
                  help="Pick a step of the sampling loop to see how its noise estimate ε is made.") if steps > 1 else 0
    combining_rule(steps_taken[i], [prompt1, prompt2], ["identity", view], [weight, 1.0 - weight])

    st.subheader("The anagram in motion")
    gif = morph_gif(backend.cache_id, r, result)
    st.image(gif, caption=f"as generated ↔ {view}")
    download("Download GIF", gif, f"anagram_seed{seed}.gif", "image/gif", key="anagrams_gif")

    views_that_break(backend, r, result, steps)

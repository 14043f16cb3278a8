"""The flow edition's part-A pages on PixNerd, the edition's own model. Choosing it in the sidebar loads PixNerd and its
Qwen3 prompt encoder through the production loaders from a snapshot folder (DIFFUSION_LAB_PIXNERD_DIR, offline, on the
CPU by DIFFUSION_LAB_PIXNERD_DEVICE) that holds both at toy size in the released layouts
(``tests.tiny_pixnerd.write_app_snapshots``); the pages then run on it at 512 × 512 with the course's prompts, w = 7
and seed 180, and draw what the library computes with the same files. Where PixNerd cannot run (here: no GPU), the
sidebar says why and the pages stay on the MNIST flow model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import ui.layout
from lib.backends import prompt_cache
from lib.backends.pixnerd.config import MODEL_NAME
from lib.backends.pixnerd.hub import DEVICE_ENV, DIR_ENV
from lib.backends.pixnerd.memory import requirement
from lib.backends.pixnerd import velocity
from lib.backends.pixnerd.velocity import load_pixnerd_velocity
from lib.ddpm.sampling import randn
from lib.flow.euler import sample
from lib.flow.path import interpolate, one_step_estimate
from lib.media.images import grid
from lib.train import model_store
from tests.tiny_pixnerd import app_sized_label, write_app_snapshots
from ui.backend import DEFAULT_SEED
from ui.flow_backend import LOCAL_CHOICE, PIXNERD_CHOICE, FlowBackend
from ui.part_a import default_image

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 240
FLOW_SAMPLING = "app_pages/flow_sampling.py"
FLOW_DENOISING = "app_pages/flow_denoising.py"
PROMPT = "a high quality photo"  # the course's prompt of 1.3 – 1.6

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(not model_store.shipped_path("flow_class").exists(),
                                 reason="the pages fall back to the shipped MNIST flow model")]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> Path:
    return write_app_snapshots(tmp_path_factory.mktemp("pixnerd-snapshots"))


@pytest.fixture()
def pixnerd(snapshots, tmp_path, monkeypatch):
    """The settings that point the app at the snapshots, on the CPU; returns the model the pages should run (the same
    files through the same loader)."""
    monkeypatch.setenv(DIR_ENV, str(snapshots))
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield load_pixnerd_velocity("cpu")
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture()
def pictures(monkeypatch) -> dict:
    """Every picture a page draws through ``ui.layout.image``, by caption."""
    drawn = {}
    original = ui.layout.image

    def image(picture, caption=None, container=st):
        drawn[caption] = picture
        return original(picture, caption, container)

    monkeypatch.setattr(ui.layout, "image", image)
    return drawn


def on_pixnerd(page: str, **settings) -> AppTest:
    """``page`` of the flow edition with PixNerd chosen in the sidebar and ``settings`` (widget key → value) set."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.session_state["edition"] = "flow"
    at.session_state["flow_backend"] = PIXNERD_CHOICE
    for key, value in settings.items():
        at.session_state[key] = value
    at = at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_sampling_page_draws_pixnerd_s_samples_with_the_course_s_defaults(pixnerd, snapshots, pictures):
    at = on_pixnerd(FLOW_SAMPLING, flow_sampling_samples=1)
    active = f"Active: **{app_sized_label()}**, the EMA weights in {snapshots}"  # a toy snapshot: not called the XXL
    assert any(c.value.startswith(active) for c in at.sidebar.caption)
    assert not at.sidebar.error
    assert at.text_input(key="flow_sampling_prompt").value == PROMPT
    assert at.slider(key="flow_sampling_w_pixnerd").value == 7.0  # the course's w, not the MNIST model's 4
    cond = pixnerd.encode_prompt(PROMPT)
    draw = lambda w: sample(pixnerd, cond, scale=w + 1, num_samples=1, h=0.02,  # noqa: E731
                            generator=torch.Generator().manual_seed(DEFAULT_SEED))
    plain, guided = draw(0.0), draw(7.0)
    assert np.array_equal(pictures[f"the prompt {PROMPT!r} · w = 0 · 50 Euler steps"], grid(plain, 1, (-1.0, 1.0)))
    assert np.array_equal(pictures[f"the prompt {PROMPT!r} · w = 7 · the same noises"], grid(guided, 1, (-1.0, 1.0)))
    assert plain.shape == (1, 3, 512, 512) and not torch.equal(plain, guided)
    assert any("drew portraits in all 5 guided samples" in i.value for i in at.info)  # 1.6's note, the course's finding


def test_the_one_step_estimate_is_pixnerd_s_on_the_sample_photo(pixnerd):
    """1.1 – 1.3 on the page's default input (the first sample photo at 512 × 512), at the slider's t = 0.5: the noisy
    input's and the one-step estimate's MSE are those of x_t = (1 − t)·ε + t·x₁ and x̂₁ = x_t + (1 − t)·v̂, v̂ PixNerd's
    velocity for the course's prompt without guidance."""
    at = on_pixnerd(FLOW_DENOISING)
    assert at.slider(key="flow_denoising_t").value == 0.5
    assert any("It runs on the CPU here (DIFFUSION_LAB_PIXNERD_DEVICE=cpu)" in m.value for m in at.sidebar.markdown)
    reference = FlowBackend(pixnerd, "reference", "the same files", family="pixnerd")
    x1 = reference.image(default_image(reference).array)
    eps = randn(x1.shape, torch.Generator().manual_seed(DEFAULT_SEED), like=x1)
    x_t = interpolate(x1, eps, 0.5)
    estimate = one_step_estimate(x_t, 0.5, pixnerd.velocity(x_t, 0.5, pixnerd.encode_prompt(PROMPT)))
    metrics = {m.label: float(m.value) for m in at.metric}
    assert x1.shape == (1, 3, 512, 512)
    assert metrics["MSE of x_t"] == pytest.approx((x_t - x1).pow(2).mean().item(), abs=1e-4)  # shown to 4 places
    assert metrics["MSE of the one-step x̂₁"] == pytest.approx((estimate - x1).pow(2).mean().item(), abs=1e-4)
    assert metrics["MSE of the one-step x̂₁"] != metrics["MSE of x_t"]  # the velocity moved it
    assert any(f"prompt {PROMPT!r} (the course's) without guidance" in c.value for c in at.caption)


def test_without_a_gpu_the_sidebar_says_why_and_the_pages_stay_on_mnist(pixnerd, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.delenv(DEVICE_ENV)  # PixNerd asks for the GPU
    at = on_pixnerd(FLOW_SAMPLING)
    (error,) = at.sidebar.error
    assert error.value.startswith(f"{MODEL_NAME} is unavailable here, so the pages use the MNIST flow model: PixNerd-XXL "
                                  "in fp32 needs a CUDA GPU")
    assert at.text_input(key="flow_sampling_prompt").value == "7" and at.sidebar.radio(key="flow_backend").value == \
        PIXNERD_CHOICE
    plan = " ".join(m.value for m in at.sidebar.markdown)  # what it would need, in both precisions
    assert requirement("fp32") in plan and requirement("bf16") in plan
    at.sidebar.radio(key="flow_backend").set_value(LOCAL_CHOICE).run()
    assert not at.sidebar.error and not at.exception


def test_why_pixnerd_cannot_run_is_remembered_across_reruns_until_check_again(pixnerd, monkeypatch):
    """Offline, the hub's client retries a download for ≈ 23 s before it gives up: a rerun (any widget) must not try
    again within ``RECHECK_SECONDS``, and "Check again" tries at once. The loader is the real one, counted."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.delenv(DEVICE_ENV)  # PixNerd asks for the GPU
    loads = []

    def counted_load(*args, **kwargs):
        loads.append(args)
        return load_pixnerd_velocity(*args, **kwargs)

    monkeypatch.setattr(velocity, "load_pixnerd_velocity", counted_load)
    at = on_pixnerd(FLOW_SAMPLING)
    at.run()
    assert len(loads) == 1 and len(at.sidebar.error) == 1
    at.sidebar.button(key="pixnerd_check_again").click().run()
    assert len(loads) == 2 and len(at.sidebar.error) == 1 and not at.exception


# every other flow part-A page, with its fewest samples: (page, settings, the course's prompts it starts from)
PAGES = {
    "app_pages/flow_velocity.py": ({}, {}),
    "app_pages/flow_euler.py": ({}, {}),
    "app_pages/flow_editing.py": ({}, {"flow_editing_prompt": PROMPT}),
    "app_pages/flow_anagrams.py": ({"flow_anagrams_samples": 1}, {
        "flow_anagrams_p1": "an oil painting of an old man",
        "flow_anagrams_p2": "an oil painting of people around a campfire"}),
    "app_pages/flow_hybrids.py": ({"flow_hybrids_samples": 1}, {"flow_hybrids_far": "a lithograph of a skull",
                                                                "flow_hybrids_near": "a lithograph of waterfalls"}),
    "app_pages/flow_inpainting.py": ({"flow_inpainting_samples": 1}, {"flow_inpainting_prompt": PROMPT}),
}


@pytest.mark.parametrize("page", PAGES)
def test_every_flow_page_runs_on_pixnerd_from_the_course_s_prompts(pixnerd, page, pictures):
    settings, prompts = PAGES[page]
    at = on_pixnerd(page, **settings)
    assert not at.sidebar.error and any(app_sized_label() in c.value for c in at.sidebar.caption)
    assert {key: at.text_input(key=key).value for key in prompts} == prompts
    assert all(s.value == 7.0 for s in at.slider if s.key and s.key.endswith("_w_pixnerd"))
    assert any(picture.shape[0] >= 512 for picture in pictures.values())  # 512 × 512 RGB results, not digits

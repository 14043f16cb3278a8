"""The flow edition's part-A backend: the class-conditioned MNIST flow model of part B (B 2.4 – 2.6) as the
``VelocityModel`` every flow part-A page runs on.

Which run, in this order: the shipped ``flow_class`` run (data/models/flow_class.safetensors); else the newest finished
run of the class flow model in the model cache (trained on its part-B page); else none — the page then says where to
train one and stops there. It runs on the EMA of the run's weights where the run kept one: the average over the last
≈ 1,000 optimiser steps, which is what an iterative sampler should draw from (``lib.train.ema``).

With ``DIFFUSION_LAB_SERVER_URL`` set, the sidebar also offers the model server (``lib.model_server``): the pages then
run on the server's ``mnist-flow-class`` — the same choice of run, made on the server's machine — each velocity one
request, batched there with every other session's; the Euler loop and the noise stay here.

PixNerd-XXL-P16-T2I, the edition's own part-A model, needs a CUDA GPU; the sidebar says what this machine lacks for it
(``lib.backends.pixnerd.memory.device_problem``).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.backends.pixnerd.config import MODEL_NAME
from lib.backends.pixnerd.memory import device_problem
from lib.flow import VelocityModel
from lib.flow.mnist import GUIDANCE_SCALE
from lib.media.images import rescaled
from lib.train import model_store
from lib.train.training import TrainedRun
from ui import common, layout
from ui.backend import (FAMILY_DEFAULTS, SERVER_CHOICE, FamilyDefaults, GuardedModel, ImageShape, remote_model,
                        server_health, server_settings)
from ui.part_a import image_and_controls
from ui.sections import training_section

MODEL = "flow_class"  # the part-B model these pages run on
STEP = 0.02  # the course's Euler step h: 50 steps from noise
# w of the course's v_c + w (v_c − v_u): the class flow model's own guidance, part B's γ = 5 in v_u + γ (v_c − v_u), is
# w = 4 (the course's w = 7 is PixNerd's)
GUIDANCE_W = GUIDANCE_SCALE - 1
LOCAL_CHOICE = "Built-in MNIST flow model (default)"


@dataclass(frozen=True)
class FlowBackend(ImageShape):
    """The active velocity model and what the pages need to know about it. It offers what the input-image picker
    (``ui.part_a.pick_image``) reads of a backend: an MNIST model takes test digits, uploads and drawings."""

    model: VelocityModel  # an ``MnistFlow``, or the server's as a ``RemoteVelocityModel``
    cache_id: str  # identifies the weights in st.cache_data keys (``ui.common.run_cache_id``)
    origin: str  # which run, in words
    weights: str = "ema"  # the run's weights it uses: "ema" (their average) or "spec" (the last step's)
    family = "mnist"
    is_if = False

    @property
    def defaults(self) -> FamilyDefaults:
        return FAMILY_DEFAULTS[self.family]

    def image(self, array) -> torch.Tensor:
        """A picked image (C, H, W) in [−1, 1] as x₁ (1, C, H, W) in the model's pixel range."""
        return rescaled(torch.as_tensor(array).unsqueeze(0), (-1.0, 1.0), self.model.value_range)


def class_flow_run() -> tuple[TrainedRun | None, str]:
    """The run the pages use (``model_store.preferred_run``: shipped, else the newest cached) and where it comes from;
    (None, "") if there is none."""
    found = model_store.preferred_run(MODEL, common.trained)
    if found is None:
        return None, ""
    run, shipped = found
    return run, run_origin(shipped, run.config.epochs, run.config.hidden)


def run_origin(shipped: bool, epochs: int, hidden: int, on_server: bool = False) -> str:
    """Where a run comes from, in words: this app's or the model server's shipped file or model cache."""
    if shipped:
        return "the server's shipped run" if on_server else "the shipped run"
    whose, cache = ("the server's", "its cache") if on_server else ("your", "the cache")
    return f"{whose} run from {cache} ({common.counted(epochs, 'epoch')}, D = {hidden})"


MISSING = (f"data/models/{MODEL}.safetensors is not shipped (making it needs a GPU run of scripts/train_models.py) "
           "and no run of it is in the model cache")  # what is missing when there is no class flow model


def missing_model() -> None:
    """Say that no class-conditioned flow model exists yet and where to train one; stop the page."""
    st.info(f"These pages run on the class-conditioned MNIST flow model of part B, and there is none yet: {MISSING}. "
            "Train one on its part-B page — a short run takes minutes — and come back: the pages pick it up.")
    section = training_section(MODEL)
    if section is not None:
        st.page_link(section.page, label=f"Train it: {section.label}", icon="➡️")
    st.stop()


def pixnerd_note() -> None:
    """What PixNerd needs, in the sidebar."""
    problem = device_problem(torch.device("cuda"))
    if problem:
        st.sidebar.caption(f"{MODEL_NAME} (the edition's own part-A model, 512×512 RGB) is not available here: {problem}.")
    else:
        st.sidebar.caption(f"This GPU fits {MODEL_NAME}; these pages run on the MNIST flow model.")


def flow_backend() -> FlowBackend | None:
    """The class flow model (``class_flow_run``) on its EMA weights where the run kept them, else its last ones; None
    if there is none. What the pages and the whole-assignment report run on."""
    run, origin = class_flow_run()
    if run is None:
        return None
    weights = run.sampling_weights
    return FlowBackend(common.flow_of(run, weights), common.run_cache_id(run, weights), origin, weights)


def server_flow_backend() -> FlowBackend | None:
    """The model server's MNIST flow model (its ``mnist-flow-class``), or None after saying in the sidebar why not
    (down, wrong token, no flow model there)."""
    from lib.backends.remote import RemoteUnavailable

    url, token = server_settings()
    health = server_health(url, token)
    fallback = "The pages use this machine's flow model meanwhile."
    if isinstance(health, str):
        st.sidebar.error(f"{health}. {fallback}")
        return None
    name, info = next(((name, info) for name, info in health["models"].items()
                       if info["predicts"] == "velocity" and info["kind"] == "mnist"), (None, None))
    if name is None:
        st.sidebar.error(f"The model server at {url} holds no MNIST flow model (it is started with "
                         f"--models …,mnist-flow-class). {fallback}")
        return None
    try:
        model = remote_model(url, name, token, info)
    except RemoteUnavailable as err:
        st.sidebar.error(f"{err}. {fallback}")
        return None
    origin = run_origin(info["shipped"], info["epochs"], info["hidden"], on_server=True)
    return FlowBackend(GuardedModel(model), f"server-{url}-{name}", origin, info["weights"])


def active_flow_backend() -> FlowBackend:
    """The flow model chosen in the sidebar — this machine's (``flow_backend``) or, where a model server is set, the
    server's (``server_flow_backend``), falling back to this machine's —, named there; stops the page if there is
    none."""
    sb = st.sidebar
    sb.subheader("Flow model")
    backend = None
    if server_settings()[0]:
        choice = sb.radio("Flow model", (LOCAL_CHOICE, SERVER_CHOICE), key="flow_backend", persist_state="session",
                          label_visibility="collapsed",
                          help="The same Euler loop runs here on either; on the server every velocity is one request.")
        if choice == SERVER_CHOICE:
            backend = server_flow_backend()
    if backend is None:
        backend = flow_backend()
    pixnerd_note()
    if backend is None:
        missing_model()
    where = "the model server" if backend.cache_id.startswith("server-") else common.device_label()
    sb.caption(f"Active: **{backend.model.name}**, {backend.origin}, "
               f"{'EMA' if backend.weights == 'ema' else 'last'} weights · {where}")
    return backend


def flow_page_setup(slug: str, formula: str | list[str], explanation: str) -> FlowBackend:
    """A flow part-A page's heading, formula and explanation (``layout.section_header``) and its backend."""
    layout.section_header(slug, formula, explanation)
    return active_flow_backend()


def flow_image_page(slug: str, formula: str | list[str], explanation: str):
    """``flow_page_setup`` for a page that starts from one picked image: also the image picker on the left
    (``ui.part_a.image_and_controls``). Returns the backend, what was picked (None: nothing usable yet) and the right
    column for the page's controls."""
    backend = flow_page_setup(slug, formula, explanation)
    picked, right = image_and_controls(backend, slug)
    return backend, picked, right


def guidance_w_slider(default: float, key: str, help: str, container=st) -> float:
    """The course's guidance weight w of v_c + w (v_c − v_u) (0: the conditional velocity alone), on every page that
    guides."""
    return container.slider("Guidance w", 0.0, 10.0, default, 0.5, key=key, help=help)

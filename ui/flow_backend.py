"""The flow edition's part-A backend: the class-conditioned MNIST flow model of part B (B 2.4 – 2.6) as the
``VelocityModel`` every flow part-A page runs on.

Which run, in this order: the shipped ``flow_class`` run (data/models/flow_class.safetensors); else the newest finished
run of the class flow model in the model cache (trained on its part-B page); else none — the page then says where to
train one and stops there. It runs on the EMA of the run's weights where the run kept one: the average over the last
≈ 1,000 optimiser steps, which is what an iterative sampler should draw from (``lib.train.ema``).

With ``DIFFUSION_LAB_SERVER_URL`` set, the sidebar also offers the model server (``lib.model_server``): the pages then
run on the server's ``mnist-flow-class`` — the same choice of run, made on the server's machine — each velocity one
request, batched there with every other session's; the Euler loop and the noise stay here.

The sidebar also offers **PixNerd-XXL-P16-T2I**, the edition's own part-A model (512 × 512 RGB, text prompts through
Qwen3-1.7B), on a CUDA GPU that fits it (``lib.backends.pixnerd.memory``) — from the hub (``HF_TOKEN`` optional) or a
folder of pre-downloaded snapshots (``DIFFUSION_LAB_PIXNERD_DIR``); ``DIFFUSION_LAB_PIXNERD_DEVICE=cpu`` runs it on
the CPU (tests, tiny snapshots). Where it cannot run, the sidebar says why (remembered for
``ui.backend.RECHECK_SECONDS``, or until "Check again") and the pages use the MNIST flow model; a model server that
holds it serves it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from lib.backends.pixnerd.config import MODEL_NAME
from lib.backends.pixnerd.encoder import MAX_TOKENS
from lib.backends.pixnerd.hub import DEVICE_ENV
from lib.backends.pixnerd.memory import card_plan, requirement
from lib.flow import VelocityModel
from lib.flow.mnist import GUIDANCE_SCALE
from lib.media.images import rescaled
from lib.train import model_store
from lib.train.training import TrainedRun
from ui import common, layout
from ui.backend import (FAMILY_DEFAULTS, RECHECK_SECONDS, SERVER_CHOICE, FamilyDefaults, GuardedModel, ImageShape,
                        remote_model, server_health, server_settings, setting, source_key, unavailable_note)
from ui.part_a import EMPTY_PROMPT_HELP, image_and_controls
from ui.sections import training_section

MODEL = "flow_class"  # the part-B model these pages run on
STEP = 0.02  # the course's Euler step h: 50 steps from noise
LOCAL_CHOICE = "Built-in MNIST flow model (default)"
PIXNERD_CHOICE = f"{MODEL_NAME} (GPU)"
# each family's own guidance w in the course's form v_c + w (v_c − v_u): the MNIST flow model's is part B's γ = 5 of
# v_u + γ (v_c − v_u), w = γ − 1 = 4; PixNerd's the course's w = 7
GUIDANCE_W = {"mnist": GUIDANCE_SCALE - 1, "pixnerd": 7.0}


@dataclass(frozen=True)
class FlowBackend(ImageShape):
    """The active velocity model and what the pages need to know about it. It offers what the input-image picker
    (``ui.part_a.pick_image``) reads of a backend: an MNIST model takes test digits, uploads and drawings."""

    model: VelocityModel  # an ``MnistFlow``, or the server's as a ``RemoteVelocityModel``
    cache_id: str  # identifies the weights in st.cache_data keys (``ui.common.run_cache_id``)
    origin: str  # which run, in words
    weights: str = "ema"  # the run's weights it uses: "ema" (their average) or "spec" (the last step's)
    family: str = "mnist"  # "mnist" | "pixnerd": which defaults apply (``FAMILY_DEFAULTS``, the sections' DEFAULTS)
    is_if = False

    @property
    def defaults(self) -> FamilyDefaults:
        return FAMILY_DEFAULTS[self.family]

    @property
    def guidance_w(self) -> float:
        """The model's own guidance in the course's form (``GUIDANCE_W``)."""
        return GUIDANCE_W[self.family]

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


# max_entries=1: one PixNerd (and its encoder) in memory at a time
@st.cache_resource(max_entries=1, show_spinner=f"Loading {MODEL_NAME} and Qwen3-1.7B (the first time from the hub: "
                                               "downloads of several GB)…")
def _pixnerd(device: str, key: str, _token: str | None, _folder: str | None):
    from lib.backends.pixnerd.velocity import load_pixnerd_velocity

    return load_pixnerd_velocity(device, _token, _folder)


@st.cache_data(ttl=RECHECK_SECONDS, show_spinner=False)
def _pixnerd_problem(device: str, key: str, _token: str | None, _folder: str | None) -> str | None:
    """Why PixNerd cannot run here, found by loading it (``_pixnerd``) and remembered for ``RECHECK_SECONDS``; None
    once it is loaded."""
    from lib.backends.pixnerd.encoder import QwenUnavailable
    from lib.backends.pixnerd.hub import PixNerdUnavailable

    try:
        _pixnerd(device, key, _token, _folder)
    except (PixNerdUnavailable, QwenUnavailable) as err:
        return str(err)
    return None


def memory_note(device: str) -> None:
    """What PixNerd needs (``lib.backends.pixnerd.memory``), in the sidebar: the plan for this machine's card, or on the
    CPU what to expect, and what it needs in either precision."""
    plan = card_plan(device)
    if plan is not None:
        title = f"GPU memory plan · {torch.cuda.get_device_name(torch.device(device))}"
        lines = plan.describe()
    else:
        title = f"{MODEL_NAME} on this machine"
        lines = ([f"It runs on the CPU here ({DEVICE_ENV}={device}): fine for toy snapshots, minutes per image at real "
                  "size (bench/RESULTS.md)."] if device == "cpu" else [])
    with st.sidebar.expander(title):
        st.markdown("\n".join(f"- {line}" for line in [*lines, f"{requirement('fp32')} — the course's precision.",
                                                          f"{requirement('bf16')}."]))


def pixnerd_backend() -> FlowBackend | None:
    """PixNerd with its prompt encoder on ``pixnerd_device`` (its settings read as IF's are: the environment, else
    .streamlit/secrets.toml), or None after saying in the sidebar why it cannot run here."""
    from lib.backends.pixnerd.hub import DIR_ENV, pixnerd_device, source

    device, token, folder = str(pixnerd_device()), setting("HF_TOKEN"), setting(DIR_ENV)
    key = source_key(source(token, folder))
    problem = _pixnerd_problem(device, key, token, folder)
    if problem is not None:
        unavailable_note(f"{MODEL_NAME} is unavailable here, so the pages use the MNIST flow model: {problem}",
                         _pixnerd_problem, "pixnerd_check_again")
    memory_note(device)
    if problem is not None:
        return None
    model = _pixnerd(device, key, token, folder)  # loaded by _pixnerd_problem
    origin = f"the EMA weights in {folder}" if folder else "the released EMA weights"
    return FlowBackend(GuardedModel(model), f"pixnerd-{device}-{key}", origin, "ema", "pixnerd")


def flow_backend() -> FlowBackend | None:
    """The class flow model (``class_flow_run``) on its EMA weights where the run kept them, else its last ones; None
    if there is none. What the pages and the whole-assignment report run on."""
    run, origin = class_flow_run()
    if run is None:
        return None
    weights = run.sampling_weights
    return FlowBackend(common.flow_of(run, weights), common.run_cache_id(run, weights), origin, weights)


def server_flow_backend() -> FlowBackend | None:
    """One of the model server's flow models — its MNIST flow model (``mnist-flow-class``) or PixNerd, chosen in the
    sidebar where it holds both —, or None after saying in the sidebar why not (down, wrong token, no flow model
    there)."""
    from lib.backends.remote import RemoteUnavailable

    url, token = server_settings()
    health = server_health(url, token)
    fallback = "The pages use this machine's flow model meanwhile."
    if isinstance(health, str):
        st.sidebar.error(f"{health}. {fallback}")
        return None
    models = {name: info for name, info in health["models"].items() if info["predicts"] == "velocity"}
    if not models:
        st.sidebar.error(f"The model server at {url} holds no flow model (it is started with --models "
                         f"…,mnist-flow-class or …,{MODEL_NAME}). {fallback}")
        return None
    if st.session_state.get("flow_server_model", next(iter(models))) not in models:  # the server was redeployed
        st.session_state["flow_server_model"] = next(iter(models))
    name = st.sidebar.selectbox("Server flow model", tuple(models), key="flow_server_model", persist_state="session",
                                help="The flow models the server holds.") if len(models) > 1 else next(iter(models))
    info = models[name]
    try:
        model = remote_model(url, name, token, info)
    except RemoteUnavailable as err:
        st.sidebar.error(f"{err}. {fallback}")
        return None
    if info["kind"] == "pixnerd":
        return FlowBackend(GuardedModel(model), f"server-{url}-{name}", "the server's EMA weights", "ema", "pixnerd")
    origin = run_origin(info["shipped"], info["epochs"], info["hidden"], on_server=True)
    return FlowBackend(GuardedModel(model), f"server-{url}-{name}", origin, info["weights"])


def active_flow_backend(required: bool = True) -> FlowBackend | None:
    """The flow model chosen in the sidebar — this machine's MNIST flow model (``flow_backend``), PixNerd
    (``pixnerd_backend``) or, where a model server is set, the server's (``server_flow_backend``), falling back to this
    machine's MNIST flow model —, named there. If there is none: stops the page after saying where to train one, or
    returns None where not ``required`` (the whole-assignment report, whose flow sections then say so)."""
    sb = st.sidebar
    sb.subheader("Flow model")
    choices = (LOCAL_CHOICE, PIXNERD_CHOICE) + ((SERVER_CHOICE,) if server_settings()[0] else ())
    if st.session_state.get("flow_backend", LOCAL_CHOICE) not in choices:  # the model server's setting went away
        st.session_state["flow_backend"] = LOCAL_CHOICE
    choice = sb.radio("Flow model", choices, key="flow_backend", persist_state="session", label_visibility="collapsed",
                      help=f"The same Euler loop runs on each. {MODEL_NAME} (the edition's own, 512×512 RGB, text "
                           f"prompts) needs a CUDA GPU: {requirement()}. On the server every velocity is one request.")
    backend = None
    if choice == PIXNERD_CHOICE:
        backend = pixnerd_backend()
    elif choice == SERVER_CHOICE:
        backend = server_flow_backend()
    if backend is None:
        backend = flow_backend()
    if backend is None:
        if not required:
            return None
        missing_model()
    where = "the model server" if backend.cache_id.startswith("server-") else common.device_label()
    weights = "" if backend.family == "pixnerd" else f", {'EMA' if backend.weights == 'ema' else 'last'} weights"
    sb.caption(f"Active: **{backend.model.name}**, {backend.origin}{weights} · {where}")
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


def guidance_w_slider(backend: FlowBackend, key: str, help: str, container=st, default: float | None = None) -> float:
    """The course's guidance weight w of v_c + w (v_c − v_u) (0: the conditional velocity alone), on every page that
    guides: from ``default``, else the model's own (``FlowBackend.guidance_w``); one widget per family, so that each
    model starts from its own."""
    start = backend.guidance_w if default is None else default
    return container.slider("Guidance w", 0.0, 10.0, start, 0.5, key=f"{key}_{backend.family}", help=help)


def edit_prompt_origin(backend: FlowBackend, prompt: str) -> str:
    """Where the prompt of an edit (``FamilyDefaults.edit_prompt``) comes from, in words, for a caption."""
    if not prompt:
        return " (empty: unconditional)"
    return " (the digit's label)" if backend.family == "mnist" else " (the course's)"


def prompt_help(backend: FlowBackend) -> str:
    """What a prompt is for the model, for the prompt fields' help."""
    what = ("A digit 0–9 or its name." if backend.family == "mnist" else
            f"Any text: Qwen3-1.7B embeds its first {MAX_TOKENS} tokens.")
    return f"{what} {EMPTY_PROMPT_HELP}"

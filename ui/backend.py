"""The part-A backend choice (sidebar) and the controls every part-A page shares.

Part A runs on whichever ``NoiseModel`` the sidebar selects: the built-in MNIST DDPM (default; trained in part B, runs on
a CPU in seconds) or DeepFloyd IF stage 1 (needs a GPU, a Hugging Face token and the accepted licence). The choice lives
in ``st.session_state`` so it follows the user from page to page.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import dataclasses
import os
from dataclasses import dataclass

import streamlit as st
import torch

from lib.backends import if_hub
from lib.train.cache import config_key
from lib.backends.if_configs import IF_VARIANTS
from lib.backends.if_memory import host_memory_bytes, plan_memory
from lib.media.text import empty_prompt_note, is_empty_prompt
from lib.backends.mnist_model import GUIDANCE_SCALE, SAMPLING_STRIDE
from lib.ddpm.sampling import PromptError
from lib.ddpm.sampling import NoiseModel
from ui.common import device_label, mnist_ddpm
from ui.inputs import Entry, whole_number_input

MNIST_CHOICE = "Built-in MNIST DDPM (default, CPU)"
IF_CHOICE = "DeepFloyd IF"
SERVER_CHOICE = "Model server"  # offered when DIFFUSION_LAB_SERVER_URL is set (lib.model_server)
BACKENDS = (MNIST_CHOICE, IF_CHOICE)
DEFAULT_SEED = 180  # the course's starter seeds torch and CUDA with 180
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts (a signed or unsigned 64-bit number)
# How long what stands in a pretrained model's way (no GPU, token, licence, network, …) is remembered, for every session,
# before it is checked again: offline, the hub's client retries a download for ≈ 23 s before it gives up, and every
# rerun of every page would wait that long again. "Check again" in the sidebar (``unavailable_note``) checks at once.
RECHECK_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class FamilyDefaults:
    """What every page starts from that depends on the family of model (the built-in MNIST models, DeepFloyd IF,
    PixNerd), not on the section: a section's own defaults are in its module (``ui.sections.<slug>.DEFAULTS``). Pages
    read these, so a new backend of a known family (a model server's MNIST or IF, say) needs no page edit."""

    prompt: str  # a prompt the model knows
    display_px: int  # on-screen width of one result image
    input_source: str  # the first choice of the input-image picker
    free_text: bool  # any text is a prompt (else a digit)
    # the DDPM edition's families only (a flow model's guidance is ``ui.flow_backend.GUIDANCE_W``, it has no timestep
    # stride, and its 1.2 sweeps its own σ)
    guidance: float | None = None  # γ: the spec's 5 for part B's DDPM; diffusers' (and the course's) 7 for IF
    stride: int | None = None  # the course's 30 over T = 1000; 10 over T = 300 gives 31 timesteps
    max_stride: int | None = None  # the stride slider's end (MNIST: 100, beyond which a chain has only 2–3 steps)
    blur_kernel: int | None = None  # Gaussian blur of the classical-denoising baseline (1.2, 1.4), for the image size
    blur_sigma: float | None = None

    def edit_prompt(self, digit: int | None) -> str:
        """The prompt of an image edit: IF's and PixNerd's "a high quality photo"; MNIST: the picked test digit's
        label, else unconditional."""
        return self.prompt if self.free_text else ("" if digit is None else str(digit))


FAMILY_DEFAULTS = {
    "mnist": FamilyDefaults(guidance=GUIDANCE_SCALE, stride=SAMPLING_STRIDE, max_stride=100, prompt="7",
                            blur_kernel=5, blur_sigma=1.0, display_px=170, input_source="MNIST test digit",
                            free_text=False),
    "if": FamilyDefaults(guidance=7.0, stride=30, max_stride=999, prompt="a high quality photo", blur_kernel=5,
                         blur_sigma=2.0, display_px=220, input_source="Sample photo", free_text=True),
    "pixnerd": FamilyDefaults(prompt="a high quality photo", display_px=256, input_source="Sample photo",
                              free_text=True),
}


class ImageShape:
    """What the pages read of a backend's images: their side and channels (its model's ``image_shape`` (C, H, W))."""

    @property
    def size(self) -> int:
        return self.model.image_shape[-1]

    @property
    def channels(self) -> int:
        return self.model.image_shape[0]


@dataclass(frozen=True)
class Backend(ImageShape):
    """The active denoiser plus what pages need to know about it."""

    model: NoiseModel
    family: str  # "mnist" | "if": which defaults apply (``FAMILY_DEFAULTS``, ``ui.sections.<slug>.DEFAULTS``)
    cache_id: str  # identifies the weights: the hashable stand-in for the model in st.cache_data keys
    variant: str | None = None  # IF-I-XL / IF-I-L / IF-I-M

    @property
    def is_if(self) -> bool:
        return self.family == "if"

    @property
    def defaults(self) -> FamilyDefaults:
        return FAMILY_DEFAULTS[self.family]

    @property
    def num_timesteps(self) -> int:
        return self.model.schedule.num_timesteps



def setting(name: str) -> str | None:
    """A setting from the environment, else from .streamlit/secrets.toml (secrets are never shown anywhere)."""
    value = os.environ.get(name)
    if value:
        return value
    try:
        return st.secrets.get(name) or None
    except Exception:  # no secrets.toml at all: Streamlit raises instead of returning the default
        return None


def if_source() -> if_hub.Source:
    """Where IF's weights come from: the snapshot folder DIFFUSION_LAB_IF_DIR if set, else the hub with HF_TOKEN."""
    return if_hub.source(token=setting("HF_TOKEN"), folder=setting(if_hub.DIR_ENV))


def source_key(src) -> str:
    """What identifies a source of weights (IF's or PixNerd's: a ``folder`` or the hub with a ``token``) in cache keys
    without the token: the folder, or whether a token is set."""
    return f"dir:{src.folder}" if src.folder is not None else f"hub:{'token' if src.token else 'anonymous'}"


@st.cache_data(ttl=RECHECK_SECONDS, show_spinner="Checking DeepFloyd IF requirements…")
def _if_problems(variant: str, device: str, key: str, _src: if_hub.Source) -> list[str]:
    """What stands between this machine and IF — GPU / token or snapshots / network / licence, then loading it
    (``_if_noise_model``) — found once and remembered for ``RECHECK_SECONDS``, for every session: a load that fails
    after the checks pass (a download cut short, a damaged file) is not tried again at every rerun."""
    problems = if_hub.check_if_requirements(variant, _src, torch.device(device))
    if not problems:
        try:
            _if_noise_model(variant, device, key, _src)
        except if_hub.IFUnavailable as err:
            problems = [str(err)]
    return problems


# max_entries=1: switching variants frees the previous UNet instead of keeping both on the GPU
@st.cache_resource(max_entries=1, show_spinner="Loading DeepFloyd IF stage 1 (first time from the hub: a download of "
                                               "several GB)…")
def _if_noise_model(variant: str, device: str, key: str, _src: if_hub.Source):
    from lib.backends.if_loading import load_if

    return load_if(variant, _src, torch.device(device))


@contextlib.contextmanager
def backend_failures_as_messages():
    """A model server that stops answering, or a GPU that runs out of memory, mid-page: one line on the page and a
    clean stop of this run (st.stop), never a traceback; the next run tries again."""
    from lib.backends.remote import RemoteUnavailable

    try:
        yield
    except RemoteUnavailable as err:
        st.error(f"{err}. Try again in a moment, or choose the built-in MNIST model in the sidebar.")
        st.stop()
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        st.error("The GPU ran out of memory for this request: ask for fewer samples or views, or try again when fewer "
                 "people are sampling at once.")
        st.stop()


class GuardedModel:
    """The active model (noise or velocity) with every method call (predict, velocity, encode_prompt, stock_sample, …) inside
    ``backend_failures_as_messages``; attributes pass through unchanged, so ``hasattr`` still tells backends apart."""

    def __init__(self, model):
        self._den = model

    def __getattr__(self, name):
        attr = getattr(self._den, name)
        if not inspect.ismethod(attr):
            return attr

        @functools.wraps(attr)
        def guarded(*args, **kwargs):
            with backend_failures_as_messages():
                return attr(*args, **kwargs)

        return guarded


def server_settings() -> tuple[str | None, str | None]:
    """(URL, token) of the model server from the environment or .streamlit/secrets.toml; (None, None) if unset."""
    from lib.backends.remote import TOKEN_ENV, URL_ENV

    return setting(URL_ENV), setting(TOKEN_ENV)


@st.cache_data(ttl=15, show_spinner=False)
def server_health(url: str, _token: str | None) -> dict | str:
    """The server's /health, or the one-line reason it cannot be used; re-checked every 15 s."""
    from lib.backends.remote import RemoteUnavailable, ServerClient

    try:
        return ServerClient(url, _token, connect_timeout=2.0, read_timeout=5.0, retries=1).health()
    except RemoteUnavailable as err:
        return str(err)


def remote_model(url: str, model: str, token: str | None, info: dict):
    """Model ``model`` of the server at ``url`` as a ``RemoteNoiseModel`` or ``RemoteVelocityModel`` (as ``info``, its
    /health entry, says), one per (server, model, token) in the process; ``RemoteUnavailable`` if it cannot be used."""
    return _remote_model(url, model, hashlib.sha256((token or "").encode()).hexdigest()[:16], token, info)


@st.cache_resource(show_spinner="Connecting to the model server…")
def _remote_model(url: str, model: str, token_digest: str, _token: str | None, _info: dict):
    """One client per (server, model, token): the digest keys a changed token to a new client, never the token."""
    from lib.backends.remote import ServerClient

    client = ServerClient(url, _token)
    return client.velocity_model(model, _info) if _info["predicts"] == "velocity" else client.noise_model(model, _info)


def _server_backend() -> Backend | None:
    """A noise model on the model server, or None after saying in the sidebar why not (down, wrong token)."""
    from lib.backends.remote import RemoteUnavailable

    url, token = server_settings()
    health = server_health(url, token)
    if isinstance(health, str):
        st.sidebar.error(f"{health}. The pages use the built-in MNIST model meanwhile.")
        return None
    models = {name: info for name, info in health["models"].items() if info["predicts"] == "eps"}
    if not models:
        st.sidebar.error(f"The model server at {url} holds no DDPM edition model (only flow models). The pages use "
                         "the built-in MNIST model meanwhile.")
        return None
    if st.session_state.get("server_model", next(iter(models))) not in models:  # the server was redeployed
        st.session_state["server_model"] = next(iter(models))
    model = st.sidebar.selectbox("Server model", tuple(models), key="server_model", persist_state="session",
                                 help="The models the server holds; the sidebar caption below names the one in use.")
    try:
        den = remote_model(url, model, token, models[model])
    except RemoteUnavailable as err:
        st.sidebar.error(f"{err}. The pages use the built-in MNIST model meanwhile.")
        return None
    st.sidebar.caption(f"Server {url} · healthy · {len(models)} models")
    info = models[model]
    return Backend(den, info["kind"], f"server-{url}-{model}", model if info["kind"] == "if" else None)


def _mnist_backend() -> Backend:
    den = mnist_ddpm("class")
    if den is None:
        st.error(
            "The built-in MNIST model (data/models/class.safetensors) is missing. Train it on the "
            "**B3 · Class-conditioned DDPM** page or run `python scripts/train_models.py`."
        )
        st.stop()
    return Backend(den, "mnist", f"mnist-{config_key(den.config.as_dict())}-{id(den.model)}")


def _if_backend(variant: str) -> Backend | None:
    """IF stage 1, or None after telling the user in the sidebar why it cannot run here."""
    src, device = if_source(), str(if_hub.if_device())
    key = source_key(src)
    problems = _if_problems(variant, device, key, src)
    if not problems:
        try:
            den = _if_noise_model(variant, device, key, src)  # loaded by _if_problems, unless another variant since
        except if_hub.IFUnavailable as err:
            problems = [str(err)]
        else:
            memory_plan_note(variant, device)
            return Backend(den, "if", f"if-{variant}-{device}-{key}", variant)
    unavailable_note("DeepFloyd IF is unavailable here, so the pages use the built-in MNIST model:\n\n"
                     + "\n".join(f"- {p}" for p in problems), _if_problems, "if_check_again")
    return None


def unavailable_note(text: str, check, key: str) -> None:
    """``text`` — why a pretrained model cannot run here — in the sidebar, and a button that clears ``check``, the
    cached finding, so that the model is tried again now rather than after ``RECHECK_SECONDS`` (the network is back,
    a token was set)."""
    st.sidebar.error(text)
    st.sidebar.button("Check again", key=key, on_click=check.clear,
                      help=f"What stands in its way is remembered for {RECHECK_SECONDS // 60} minutes, for every "
                           "session of this app, then checked again; this button checks now (the network is back, a "
                           "token was set).")


def active_backend() -> Backend:
    """The backend chosen in the sidebar (persisted across pages), falling back to MNIST when IF cannot run."""
    sb = st.sidebar
    sb.subheader("Backend")
    choices = BACKENDS + ((SERVER_CHOICE,) if server_settings()[0] else ())
    if st.session_state.get("backend", MNIST_CHOICE) not in choices:  # the model server's setting went away
        st.session_state["backend"] = MNIST_CHOICE
    # persist_state: the choice follows the user from page to page (Home and the sidebar read it too)
    choice = sb.radio("Diffusion model", choices, key="backend", persist_state="session",
                      help="Every part-A technique runs on any of them through the same sampling loop.")
    backend = None
    if choice == SERVER_CHOICE:
        backend = _server_backend()
    elif choice == IF_CHOICE:
        variant = sb.selectbox("IF stage-1 variant", tuple(IF_VARIANTS), key="if_variant", persist_state="session",
                               help="XL: 4.3B parameters (the assignment's), L: 0.9B (the course notebook's), M: 0.4B.")
        backend = _if_backend(variant)
    if backend is None:
        backend = _mnist_backend()
    where = "the model server" if choice == SERVER_CHOICE and backend.cache_id.startswith("server-") else device_label()
    sb.caption(f"Active: **{backend.model.name}** · {where}")
    return dataclasses.replace(backend, model=GuardedModel(backend.model))


def memory_plan_note(variant: str, device: str) -> None:
    """The memory plan for this card, in the sidebar (lib.backends.if_memory.plan_memory)."""
    if not device.startswith("cuda"):
        st.sidebar.caption(f"{variant} runs on the CPU here ({if_hub.DEVICE_ENV}=cpu): fine for tiny test models, "
                           "minutes per step at real size.")
        return
    props = torch.cuda.get_device_properties(torch.device(device))
    plan = plan_memory(variant, props.total_memory, host_memory_bytes())
    with st.sidebar.expander(f"GPU memory plan · {props.name}"):
        st.markdown("\n".join(f"- {line}" for line in plan.describe()))


# --- shared controls -------------------------------------------------------------------------------------------------

def prompt_ok(backend: Backend, prompt: str, *, field: str | None = None) -> bool:
    """True if the backend (a ``Backend`` or the flow edition's ``FlowBackend``) can condition on ``prompt``, else an
    st.error saying why (and nothing is sampled).

    One rule on every page: the empty prompt is the unconditional one (the model's null condition, which CFG's ε_u
    uses anyway), never an error, and the page says so in one message (``lib.media.text.empty_prompt_note``).
    ``field`` names the prompt ("Prompt 2") where a page has more than one.
    """
    try:
        if backend.is_if:  # a new prompt loads T5-XXL once to embed it (then it is cached on disk)
            with st.spinner(f"Embedding “{prompt[:40]}” with T5…"):
                backend.model.encode_prompt(prompt)
        else:
            backend.model.encode_prompt(prompt)
    except PromptError as err:
        problem = str(err)
    except Exception as err:  # IF: the text encoder could not be fetched or run
        problem = f"The text encoder could not embed “{prompt[:60]}”: {err}"
    else:
        if is_empty_prompt(prompt):
            st.info(empty_prompt_note(field))
        return True
    st.error(problem if field is None else f"{field}: {problem}")
    return False


def seed_control(key: str = "seed", *, feeds: str | None = None, container=st) -> Entry:
    """The one seed field of every page: any whole number ``torch.Generator.manual_seed`` takes (``SEED_RANGE``),
    negative ones too, typed as text and read exactly (``ui.inputs``: 1.5 is refused, never read as 1; a 20-digit seed
    stays itself). Kept for the session (``persist_state``): a page switch and back finds the same seed. ``feeds``: the
    button the seed feeds, which the caller disables while the entry is invalid."""
    return whole_number_input("Seed", DEFAULT_SEED, key=key, minimum=SEED_RANGE[0], maximum=SEED_RANGE[1],
                              feeds=feeds, container=container,
                              help="The same seed gives the same noise, so results are reproducible and comparable.")


def stride_slider(num_timesteps: int, default: int, key: str, *, maximum: int = 100, container=st) -> int:
    """The one stride control, for any DDPM sampler over T = ``num_timesteps`` (parts A and B): stride s visits
    t = T − 1, T − 1 − s, …, then the clean image — about T / s denoising steps. Kept for the session, like the seed."""
    T = num_timesteps
    return int(container.slider(
        "Stride", 1, min(T - 1, maximum), default, key=key, persist_state="session",
        help=f"T = {T}: stride s visits about T / s timesteps (stride 1 is the full chain, slow on a CPU).",
    ))


def stride_control(backend: Backend, key: str = "stride", container=st) -> int:
    """``stride_slider`` for the active backend, from its family's default (the course's 30 on IF, 10 on MNIST); the
    value is kept per family."""
    d = backend.defaults
    return stride_slider(backend.num_timesteps, d.stride, f"{key}_{backend.family}", maximum=d.max_stride,
                         container=container)


class StepProgress:
    """An st.progress bar driven by the sampling loops' ``on_step(i, t, x, x̂0)``.

    The bar is created by the page; the loop runs inside an st.cache_data function, which records every st call for
    replay on a cache hit. Updates therefore run in the page's own context (captured here), where nothing is recorded:
    a replay would otherwise refer to a bar of an earlier run.
    """

    def __init__(self, total_steps: int, text: str = "Denoising…"):
        self.total, self.text, self.count = max(int(total_steps), 1), text, 0
        self.slot = st.empty()  # filled with a bar on the first step, so a cache hit shows nothing
        self._context = contextvars.copy_context()

    def __call__(self, i: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        """Counts calls, so one bar can follow several loops (e.g. one per guidance scale)."""
        self.advance(f"t → {t:g}" if t >= 0 else "clean image")

    def advance(self, note: str = "") -> None:
        """One unit of work done (a loop step, or a whole pipeline call where there is no step callback)."""
        self.count = min(self.count + 1, self.total)
        text = f"{self.text} {self.count}/{self.total}" + (f" ({note})" if note else "")
        self._context.run(self.slot.progress, self.count / self.total, text=text)

    def done(self) -> None:
        self.slot.empty()

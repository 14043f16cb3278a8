"""DeepFloyd IF (stage I, 64×64 RGB, T5-XXL text conditioning) behind the ``Denoiser`` interface of lib.sampling.

Everything part A computes — one-step denoising, the strided loop, CFG, SDEdit, inpainting, anagrams, hybrids — runs
through lib.sampling / lib.edits on an ``IFDenoiser`` exactly as it runs on the MNIST DDPM. This module only adds what
is specific to IF:

* the UNet outputs 6 channels: ε̂ = out[:, :3] and the variance interpolation value v = out[:, 3:] ∈ [−1, 1], with
  log σ² = frac · log β + (1 − frac) · log β̃, frac = (v + 1) / 2 (diffusers' ``learned_range``; lib.diffusion);
* the schedule is read from IF's own ``DDPMScheduler`` (squaredcos_cap_v2, T = 1000), so the two never disagree;
* conditions are cached T5 prompt embeddings (lib.prompt_cache), (1, 77, 4096) each; the null condition is "" ;
* the weights are gated on the Hugging Face hub: ``check_if_requirements`` lists what is missing (GPU, token, network,
  license) and ``load_if`` turns every hub failure into an ``IFUnavailable`` that says how to fix it. The token is
  never logged, put in a message, a cache key or a file.

``tiny_if_denoiser`` builds the same diffusers classes at toy size with random weights: the tests run the real code
path on it without a GPU, a token or a download.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, Sequence

import torch

from lib.diffusion import VarianceType, step_log_variance
from lib.prompt_cache import EMBEDDINGS_DIR, MAX_TOKENS, T5_REPO, PromptEmbeddingCache, t5_encode_fn
from lib.sampling import randn
from lib.schedules import Schedule, schedule_from_diffusers, strided_timesteps

IF_VARIANTS = {"IF-I-XL": "DeepFloyd/IF-I-XL-v1.0", "IF-I-L": "DeepFloyd/IF-I-L-v1.0", "IF-I-M": "DeepFloyd/IF-I-M-v1.0"}
STAGE2 = "DeepFloyd/IF-II-L-v1.0"
T5_DIM = 4096  # hidden size of T5-v1.1-XXL
MIN_GPU_GIB = 14  # IF-I-XL in fp16 (≈ 8.6 GB) + activations; a "16 GB" T4 reports ≈ 14.7 GiB

NO_GPU = "DeepFloyd IF needs a CUDA GPU with ≥ 16 GB; this machine has none — the app stays on the built-in MNIST model"
NO_TOKEN = (
    "No Hugging Face token: set HF_TOKEN or add it to .streamlit/secrets.toml (HF_TOKEN = \"hf_…\"); "
    "create a read token at https://huggingface.co/settings/tokens"
)
NO_NETWORK = (
    "The Hugging Face hub (huggingface.co) is unreachable — no network, or HF_HUB_OFFLINE is set — and the DeepFloyd "
    "IF weights are not in the local cache: connect this machine to the internet once so they can be downloaded"
)


def license_message(repo: str) -> str:
    return (f"The token has no access to the gated model {repo}: accept the license at https://huggingface.co/{repo} "
            "while logged in as the token's owner, then reload")


def rejected_message(repo: str) -> str:
    return (f"The hub refused {repo} (invalid or expired token, or no such repository) — create a new read token at "
            "https://huggingface.co/settings/tokens and set HF_TOKEN")


class IFUnavailable(Exception):
    """DeepFloyd IF cannot be used here; the message says what is missing and how to fix it (never the token)."""


# ----------------------------------------------------------------------------------------------------------------------
# The denoiser


class IFDenoiser:
    """A stage-I IF UNet + its scheduler + an embedding function, as a ``Denoiser``.

    The sampling state stays float32 (``dtype``); ``predict`` casts to the UNet's dtype (fp16 on CUDA) for the one
    forward pass and back, so the DDPM arithmetic of lib.diffusion is done in full precision.
    """

    variance_type: VarianceType = "learned_range"
    dtype = torch.float32

    def __init__(self, unet, scheduler, embed: Callable[[list[str]], torch.Tensor], *, name: str, pipeline=None):
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.embed = embed  # prompts -> (N, 77, 4096)
        self.name = name
        self.pipeline = pipeline  # the stock diffusers IFPipeline around the same UNet (page A0), if any
        self.schedule: Schedule = schedule_from_diffusers(scheduler)
        size = unet.config.sample_size
        self.image_shape = (int(unet.config.in_channels), int(size), int(size))
        # read once (the UNet is placed before it is wrapped): ModelMixin.device/.dtype walk every module, 1.3 ms
        # per read on IF-I-XL's 610 modules — a few % of an fp16 H100 step (bench/RESULTS.md §3)
        self.device, self.unet_dtype = unet.device, unet.dtype
        self._null: torch.Tensor | None = None

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: int, cond: torch.Tensor):
        """One UNet pass on the whole batch; the 6 output channels split into (ε̂, v)."""
        dtype = self.unet_dtype
        out = self.unet(x_t.to(self.device, dtype), int(t), encoder_hidden_states=cond.to(self.device, dtype),
                        return_dict=False)[0]
        eps, v = out.to(x_t.dtype).split(x_t.shape[1], dim=1)
        return eps, v

    def encode_prompts(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """(1, 77, 4096) embeddings of several prompts; "" is embedded in the same call the first time (one T5 load)."""
        want = list(prompts) + ([""] if self._null is None else [])
        if not want:
            return []
        embs = self.embed(want).to(self.device)
        if self._null is None:
            self._null = embs[-1:]
            embs = embs[:-1]
        return [e.unsqueeze(0) for e in embs]

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.encode_prompts([prompt])[0]

    def null_condition(self) -> torch.Tensor:
        """The embedding of the empty prompt "" (the unconditional half of CFG, as in the course)."""
        if self._null is None:
            self.encode_prompts([])
        return self._null

    def timesteps(self, stride: int) -> list[int]:
        """[990, 960, …, 30, 0] for stride 30 (the course's ``strided_timesteps``)."""
        return strided_timesteps(self.schedule.num_timesteps, stride)


def add_variance(scheduler, predicted_variance: torch.Tensor, t: int, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's ``add_variance``: image + exp(½ log σ²) z, with log σ² of the step t → t' where t' is the
    timestep after t in the scheduler's list (``set_timesteps(timesteps=strided)`` first, like the course).

    The same number as diffusers' ``scheduler._get_variance(t, v)`` (a log variance for learned_range), but computed
    by ``lib.diffusion.step_log_variance`` — the formula every loop of the app uses.
    """
    t_prev = int(scheduler.previous_timestep(t))
    log_var = step_log_variance(int(t), t_prev, schedule_from_diffusers(scheduler), "learned_range", predicted_variance)
    if generator is None:
        noise = torch.randn(image.shape, device=image.device, dtype=image.dtype)
    else:
        noise = randn(image.shape, generator, like=image)
    return image + torch.exp(0.5 * log_var).to(image) * noise


# ----------------------------------------------------------------------------------------------------------------------
# Requirements and loading from the hub


def _token(token: str | None) -> str | None:
    return token or os.environ.get("HF_TOKEN") or None


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "hf_***") if token else text


def _causes(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


_NETWORK_ERRORS = {"ConnectionError", "ConnectError", "ConnectTimeout", "TimeoutException", "TransportError",
                   "NetworkError", "Timeout", "LocalEntryNotFoundError", "OfflineModeIsEnabled", "gaierror"}


def hub_error_message(err: BaseException, repo: str) -> str:
    """What a hub/loading failure means for the user: license, network, rejected token, or the error itself."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    chain = _causes(err)
    if any(isinstance(e, GatedRepoError) for e in chain):
        return license_message(repo)
    if any(_NETWORK_ERRORS & {c.__name__ for c in type(e).__mro__} for e in chain):
        return NO_NETWORK
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return rejected_message(repo)
    text = " ".join(str(e) for e in chain).lower()
    if "gated" in text or "restricted" in text or " 403" in text:
        return license_message(repo)
    if "401" in text:
        return rejected_message(repo)
    if "connect" in text or "offline" in text or "internet" in text:
        return NO_NETWORK
    return f"Could not load {repo}: {type(err).__name__}: {str(err)[:300]}"


def from_hub(loader: Callable, repo: str, token: str | None, **kwargs):
    """``loader(repo, token=token, **kwargs)`` (any ``from_pretrained``), with failures raised as ``IFUnavailable``."""
    try:
        return loader(repo, token=token, **kwargs)
    except torch.cuda.OutOfMemoryError as err:
        raise IFUnavailable(f"Not enough GPU memory to load {repo} (needs ≥ 16 GB free)") from err
    except Exception as err:  # noqa: BLE001 — the loading boundary: every failure becomes a message for the user
        # diffusers / transformers wrap hub errors in OSError / EnvironmentError with the cause attached; raw HTTP
        # client errors (httpx) are not OSErrors at all.
        problem = hub_error_message(err, repo)
        if token is None and problem == license_message(repo):
            problem = NO_TOKEN  # anonymous requests to a gated repo fail the same way: the token comes first
        raise IFUnavailable(_scrub(problem, token)) from None


def _cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "model_index.json"), str)


def _probe_hub(repo: str, token: str | None) -> str | None:
    """None if ``repo`` can be downloaded with ``token`` (or is cached), else the problem."""
    from huggingface_hub import auth_check, model_info

    try:
        if token:
            auth_check(repo, token=token)
        else:
            model_info(repo, token=False)  # gated repos' metadata is public: a pure reachability check
        return None
    except Exception as err:  # any failure to reach or authorise is reported, never raised
        problem = hub_error_message(err, repo)
        return None if problem == NO_NETWORK and _cached(repo) else _scrub(problem, token)


def check_if_requirements(token: str | None = None, *, variant: str = "IF-I-XL") -> list[str]:
    """Everything that stops ``load_if`` from working here, in the order to fix it: GPU, token, network, license.

    ``token`` defaults to ``os.environ["HF_TOKEN"]`` (the page passes ``st.secrets``'s). The license is checked for the
    stage-I repository and for the text-encoder repository (IF-I-XL) that prompt embeddings come from.
    """
    problems: list[str] = []
    if not torch.cuda.is_available():
        problems.append(NO_GPU)
    else:
        props = torch.cuda.get_device_properties(0)
        gib = props.total_memory / 2**30
        if gib < MIN_GPU_GIB:
            problems.append(f"DeepFloyd IF needs a CUDA GPU with ≥ 16 GB; {props.name} has {gib:.1f} GiB — the app "
                            "stays on the built-in MNIST model")
    token = _token(token)
    if token is None:
        problems.append(NO_TOKEN)
    for repo in dict.fromkeys([IF_VARIANTS[variant], T5_REPO]):
        problem = _probe_hub(repo, token)
        if problem is not None and problem not in problems:
            problems.append(problem)
            if problem == NO_NETWORK:
                break
    return problems


def load_if(variant: str = "IF-I-XL", token: str | None = None, device: str | torch.device = "cuda",
            embeddings_dir=EMBEDDINGS_DIR) -> IFDenoiser:
    """Stage I from the hub as in the course: ``DiffusionPipeline.from_pretrained(repo, text_encoder=None,
    variant="fp16", torch_dtype=torch.float16)``; prompts are embedded by T5 on demand and cached on disk.

    Raises ``IFUnavailable`` (no GPU, gated, offline, …). Callers caching the result (st.cache_resource) must not hash
    the token: pass it as an ``_token`` argument.
    """
    from diffusers import DiffusionPipeline

    if variant not in IF_VARIANTS:
        raise ValueError(f"unknown IF variant {variant!r}; choose one of {', '.join(IF_VARIANTS)}")
    repo = IF_VARIANTS[variant]
    token = _token(token)
    device = torch.device(device)
    pipe = _fp16_pipeline(DiffusionPipeline, repo, token, device,
                          oom=f"Not enough GPU memory for {repo}; try a smaller variant (IF-I-L or IF-I-M)")
    cache = PromptEmbeddingCache(embeddings_dir, t5_encode_fn(token, device))
    return IFDenoiser(pipe.unet, pipe.scheduler, cache.get_many, name=f"DeepFloyd {variant}", pipeline=pipe)


def load_stage2(token: str | None = None, device: str | torch.device = "cuda"):
    """The 64 → 256 px super-resolution stage (``IFSuperResolutionPipeline``, fp16), for ``upscale``."""
    from diffusers import IFSuperResolutionPipeline

    return _fp16_pipeline(IFSuperResolutionPipeline, STAGE2, _token(token), torch.device(device),
                          oom=f"Not enough GPU memory for {STAGE2} next to stage I")


def _fp16_pipeline(pipeline_class, repo: str, token: str | None, device: torch.device, *, oom: str):
    """``pipeline_class.from_pretrained(repo)`` in fp16 without its text encoder, on ``device``; every way this can
    fail (no GPU, hub errors, out of memory) becomes an ``IFUnavailable`` that says what to do."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise IFUnavailable(NO_GPU)
    pipe = from_hub(pipeline_class.from_pretrained, repo, token, text_encoder=None, variant="fp16",
                    torch_dtype=torch.float16)
    try:
        pipe = pipe.to(device)
    except torch.cuda.OutOfMemoryError as err:
        raise IFUnavailable(oom) from err
    pipe.set_progress_bar_config(disable=True)
    return pipe


def upscale(stage2_pipe, image64: torch.Tensor, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor,
            generator: torch.Generator, steps: int = 20, *, guidance_scale: float = 4.0,
            noise_level: int = 250) -> torch.Tensor:
    """Stage II: (B, 3, 64, 64) in [−1, 1] → (B, 3, 4·64, 4·64) in [−1, 1], conditioned on the same prompt embeddings
    (one row, or one per image). ``noise_level`` is the noise added to the low-res image first (diffusers' default)."""
    b = image64.shape[0]
    out = stage2_pipe(
        image=image64, prompt_embeds=prompt_embeds.expand(b, -1, -1), negative_prompt_embeds=negative_embeds.expand(
            b, -1, -1), num_inference_steps=steps, guidance_scale=guidance_scale, noise_level=noise_level,
        generator=generator, output_type="pt",
    ).images
    return out.float().clamp(-1, 1)


def pipeline_sample(denoiser: IFDenoiser, prompt: str, *, steps: int, generator: torch.Generator,
                    scale: float = 7.0, num_samples: int = 1) -> torch.Tensor:
    """Part 0: the stock diffusers ``IFPipeline`` (its own timesteps for ``steps`` and its dynamic thresholding) with the
    cached embeddings; (num_samples, 3, 64, 64) in [−1, 1]."""
    if denoiser.pipeline is None:
        raise ValueError(f"{denoiser.name} has no stock pipeline")
    cond = denoiser.encode_prompt(prompt).expand(num_samples, -1, -1)
    uncond = denoiser.null_condition().expand(num_samples, -1, -1)
    out = denoiser.pipeline(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=steps,
                            guidance_scale=scale, generator=generator, output_type="pt").images
    return out.float().clamp(-1, 1)


# ----------------------------------------------------------------------------------------------------------------------
# A toy-sized IF with random weights, for tests


def if_stage1_scheduler():
    """A ``DDPMScheduler`` configured like IF-I-XL's scheduler_config.json (learned_range, squaredcos_cap_v2, dynamic
    thresholding at 0.95 / 1.5)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001, beta_end=0.02,
        variance_type="learned_range", prediction_type="epsilon", thresholding=True, dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5, clip_sample=True, clip_sample_range=1.0,
    )


def fake_t5_embeddings(prompts: list[str]) -> torch.Tensor:
    """A deterministic stand-in for T5: each prompt's (77, 4096) rows drawn from a generator seeded by its SHA-256."""
    rows = []
    for p in prompts:
        g = torch.Generator().manual_seed(int(hashlib.sha256(p.encode()).hexdigest()[:15], 16))
        rows.append(torch.randn(MAX_TOKENS, T5_DIM, generator=g))
    return torch.stack(rows)


def tiny_if_denoiser(seed: int = 0) -> IFDenoiser:
    """IF-I's block layout (ResNet down/up blocks, SimpleCrossAttn blocks, T5 text projection + attention pooling,
    scale-shift resnets, GELU, 3 in / 6 out) shrunk to a few layers, random weights from ``seed``, on the CPU.

    Only the width of the text input (4096) is real size, so the fake (1, 77, 4096) embeddings fit.
    """
    from diffusers import IFPipeline, UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=3, out_channels=6, layers_per_block=1, block_out_channels=[16, 32],
            norm_num_groups=8,
            down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
            mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
            cross_attention_dim=32, encoder_hid_dim=T5_DIM, encoder_hid_dim_type="text_proj", attention_head_dim=8,
            addition_embed_type="text", addition_embed_type_num_heads=2, cross_attention_norm="group_norm",
            resnet_time_scale_shift="scale_shift", act_fn="gelu",
        ).eval()
    scheduler = if_stage1_scheduler()
    pipe = IFPipeline(unet=unet, scheduler=if_stage1_scheduler(), tokenizer=None, text_encoder=None,
                      safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return IFDenoiser(unet, scheduler, fake_t5_embeddings, name="tiny random IF (tests)", pipeline=pipe)

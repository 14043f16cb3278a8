"""Loading DeepFloyd IF's parts — stage I, stage II, the T5 text encoder — from a ``lib.backends.if_hub.Source`` (the hub, or a
folder of snapshots) onto the devices ``lib.backends.if_memory.plan_memory`` gives them.

Each part is loaded on its own, as the course does (``text_encoder=None``): the stage-I UNet and scheduler make the
stock ``IFPipeline`` with no text encoder, no safety checker, no feature extractor and no watermarker — the hub repos
ship all of those, but images are returned as tensors (``output_type="pt"``), which never use them, and loading the
safety checker fails with the pinned transformers (``IFSafetyChecker`` lacks ``all_tied_weights_keys``). Only the
files these parts need are read or downloaded. Weights load straight onto their device (``device_map``), so the
host never holds a second copy of a UNet.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import torch

from lib.backends.deepfloyd import WITHOUT_EXTRAS, IFNoiseModel, stock_pipeline
from lib.backends.if_configs import IF_VARIANTS, STAGE2, T5_REPO
from lib.backends.if_hub import IFUnavailable, Source, gpu_problem, if_device, source, stage2_memory_problem
from lib.backends.if_memory import host_memory_bytes, plan_memory
from lib.backends import prompt_cache
from lib.backends.prompt_cache import MAX_TOKENS, PromptEmbeddingCache

def _device_map(device: torch.device):
    return {"": str(device)} if device.type != "cpu" else None


def _unet(src: Source, repo: str, device: torch.device):
    """The repo's UNet: the fp16 weight files, in fp16 on a GPU (fp32 on the CPU), loaded straight onto ``device``."""
    from diffusers import UNet2DConditionModel

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    return src.load(UNet2DConditionModel.from_pretrained, repo, subfolder="unet", variant="fp16", dtype=dtype,
                    device_map=_device_map(device)).eval()


def _scheduler(src: Source, repo: str, subfolder: str = "scheduler"):
    from diffusers import DDPMScheduler

    return src.load(DDPMScheduler.from_pretrained, repo, subfolder=subfolder)


def t5_placement(variant: str, device: torch.device) -> tuple[torch.device, bool]:
    """Where T5 runs when ``variant``'s UNets are on ``device``, and whether it stays loaded (lib.backends.if_memory)."""
    if device.type != "cuda":
        return torch.device("cpu"), True
    plan = plan_memory(variant, torch.cuda.get_device_properties(device).total_memory, host_memory_bytes())
    return (device if plan.t5_on_gpu else torch.device("cpu")), plan.keep_t5


class T5Encoder:
    """The ``encode_fn`` of the prompt cache: T5-v1.1-XXL's tokenizer and encoder, loaded at the first new prompt and
    kept for the next ones (unless ``keep`` is False: then freed after each batch, for machines short of RAM).

    Embeds exactly as ``IFPipeline.encode_prompt`` does: lower-cased, stripped, padded to 77 tokens, with the
    attention mask. fp16 on a GPU (transformers keeps the ``wo`` layers in fp32), bf16 on the CPU. One batch at a
    time (a lock): concurrent sessions with new prompts queue here, never on the GPU's UNet calls.
    """

    def __init__(self, src: Source, device: torch.device, keep: bool = True):
        self.src, self.device, self.keep = src, torch.device(device), keep
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.loads = 0  # how many times the encoder was read from disk or the hub
        self._lock = threading.Lock()
        self._parts = None

    def _load(self):
        from transformers import AutoTokenizer, T5EncoderModel

        tokenizer = self.src.load(AutoTokenizer.from_pretrained, T5_REPO, subfolder="tokenizer")
        encoder = self.src.load(T5EncoderModel.from_pretrained, T5_REPO, subfolder="text_encoder", variant="fp16",
                                dtype=self.dtype, device_map=_device_map(self.device))
        self.loads += 1
        return tokenizer, encoder.eval()

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """(len(prompts), 77, D) embeddings on the CPU, in the encoder's dtype (what the prompt cache stores)."""
        with self._lock:
            if self._parts is None:
                self._parts = self._load()
            tokenizer, encoder = self._parts
            try:
                inputs = tokenizer([p.lower().strip() for p in prompts], padding="max_length", max_length=MAX_TOKENS,
                                   truncation=True, add_special_tokens=True, return_tensors="pt")
                with torch.no_grad():
                    out = encoder(inputs.input_ids.to(self.device),
                                  attention_mask=inputs.attention_mask.to(self.device))[0]
                return out.cpu()
            finally:
                if not self.keep:
                    self._parts = None
                    del encoder
                    gc.collect()
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()


def load_if(variant: str = "IF-I-XL", src: Source | None = None, device: torch.device | str | None = None,
            embeddings_dir: str | Path | None = None) -> IFNoiseModel:
    """Stage I of ``variant`` from ``src`` (default: the settings' source) as an ``IFNoiseModel`` on ``device`` (default:
    the GPU), with the stock ``IFPipeline`` for A0 and prompts embedded by T5 on demand, cached in ``embeddings_dir``
    (default ``lib.backends.prompt_cache.EMBEDDINGS_DIR``).

    Raises ``IFUnavailable`` (no GPU or too small a one, no token, gated, offline, missing snapshot, …). Callers that
    cache the result (st.cache_resource) must not hash the source: it may hold the token.
    """
    if variant not in IF_VARIANTS:
        raise ValueError(f"unknown IF variant {variant!r}; choose one of {', '.join(IF_VARIANTS)}")
    src = src or source()
    device = torch.device(device) if device is not None else if_device()
    problem = gpu_problem(variant, device)
    if problem:
        raise IFUnavailable(problem)
    repo = IF_VARIANTS[variant]
    unet = _unet(src, repo, device)
    scheduler = _scheduler(src, repo)
    pipe = stock_pipeline(unet, scheduler)
    t5_device, keep = t5_placement(variant, device)
    cache = PromptEmbeddingCache(embeddings_dir or prompt_cache.EMBEDDINGS_DIR, T5Encoder(src, t5_device, keep))
    return IFNoiseModel(unet, scheduler, cache.get_many, name=f"DeepFloyd {variant}", pipeline=pipe)


def load_stage2(variant: str = "IF-I-XL", src: Source | None = None, device: torch.device | str | None = None):
    """The 64 → 256 px super-resolution stage (IF-II-L) as an ``IFSuperResolutionPipeline`` without text encoder or
    safety parts, for ``lib.backends.deepfloyd.upscale``; ``IFUnavailable`` if it does not fit beside ``variant``'s stage I."""
    from diffusers import IFSuperResolutionPipeline

    src = src or source()
    device = torch.device(device) if device is not None else if_device()
    problem = stage2_memory_problem(variant, device)
    if problem:
        raise IFUnavailable(problem)
    pipe = IFSuperResolutionPipeline(unet=_unet(src, STAGE2, device), scheduler=_scheduler(src, STAGE2),
                                     image_noising_scheduler=_scheduler(src, STAGE2, "image_noising_scheduler"),
                                     **WITHOUT_EXTRAS)
    pipe.set_progress_bar_config(disable=True)
    return pipe

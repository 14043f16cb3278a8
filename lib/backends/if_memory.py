"""How much memory DeepFloyd IF needs, from the real model configurations, and where each part goes on a given card.

Weights are parameters × bytes per parameter, counted on PyTorch's meta device (no download, no memory):

* stage I (IF-I-XL / L / M) and stage II (IF-II-L) in fp16: 2 bytes per parameter;
* the T5-v1.1-XXL text encoder on the GPU in fp16, except its feed-forward output projections ``wo``, which
  transformers keeps in fp32 (``T5PreTrainedModel._keep_in_fp32_modules``): 4.76 B parameters → 10.75 GiB;
  on the CPU in bf16 (T5's training precision, no fp32 exception): 8.87 GiB.

A CUDA card's ``total_memory`` is not all usable: the CUDA context and the cuBLAS/cuDNN workspaces live outside
PyTorch's allocator (``CUDA_CONTEXT``), and a UNet call needs room for its activations (``UNET_WORK``: a batch of up
to 8 rows at 64 px, the anagram/hybrid batch, plus allocator slack). The plan (``plan_memory``):

    stage I on the GPU                                        needs  context + stage I + UNET_WORK
    stage II beside it (A0's 64 → 256 px upscaling)           needs  … + stage II
    T5 beside both (new prompts embedded on the GPU)          needs  … + T5 (fp16, wo fp32)
    otherwise T5 runs on the CPU in bf16, loaded once and kept in RAM (re-read per batch of new prompts when the
    machine's RAM cannot hold it next to the app), so the GPU is never emptied while other sessions sample.

Prompt embeddings are cached on disk (lib.backends.prompt_cache), so T5 only runs for prompts nobody has used yet.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

from lib.backends.hub import LAZY_IMPORT
from lib.backends.if_configs import IF_VARIANTS, PUBLISHED_PARAMS, STAGE1_CONFIGS, T5_XXL_CONFIG

GIB = 2**30
CUDA_CONTEXT = int(0.6 * GIB)
UNET_WORK = int(1.5 * GIB)
T5_WORK = int(0.5 * GIB)
HOST_RESERVE = 3 * GIB  # the app's own process (torch, Streamlit, the MNIST models) besides a T5 kept in RAM

def unet_params(config: dict) -> int:
    """Parameter count of a ``UNet2DConditionModel(**config)``, built on the meta device."""
    import torch

    with LAZY_IMPORT:
        from diffusers import UNet2DConditionModel
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    return sum(p.numel() for p in unet.parameters())


def t5_bytes(config: dict, on_gpu: bool) -> int:
    """Weight bytes of T5EncoderModel(config): fp16 with the fp32 ``wo`` layers on the GPU, bf16 on the CPU."""
    import torch

    with LAZY_IMPORT:
        from transformers import T5Config, T5EncoderModel
    with torch.device("meta"):
        model = T5EncoderModel(T5Config(**config))
    if not on_gpu:
        return 2 * sum(p.numel() for p in model.parameters())
    keep = set(T5EncoderModel._keep_in_fp32_modules or ())
    return sum(p.numel() * (4 if set(name.split(".")) & keep else 2) for name, p in model.named_parameters())


@dataclass(frozen=True)
class Weights:
    """Bytes of each part: stage I and stage II in fp16; T5 as placed on the GPU and on the CPU."""

    stage1: int
    stage2: int
    t5_gpu: int
    t5_cpu: int


@functools.cache
def weights(variant: str) -> Weights:
    """The parts' sizes for ``variant``: from the built-in configurations, else from the published counts."""

    def params(name: str) -> int:
        return unet_params(STAGE1_CONFIGS[name]) if name in STAGE1_CONFIGS else PUBLISHED_PARAMS[name]

    return Weights(stage1=2 * params(variant), stage2=2 * params("IF-II-L"),
                   t5_gpu=t5_bytes(T5_XXL_CONFIG, on_gpu=True), t5_cpu=t5_bytes(T5_XXL_CONFIG, on_gpu=False))


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class MemoryPlan:
    """Where stage I, stage II and T5 go on one card; ``fits`` is False when not even stage I does."""

    variant: str
    gpu_bytes: int
    host_bytes: int | None
    weights: Weights
    fits: bool
    stage2: bool  # stage II fits on the GPU beside stage I
    t5_on_gpu: bool  # else on the CPU, in bf16
    keep_t5: bool  # T5 stays loaded between batches of new prompts (else re-read from disk for each)

    @property
    def peak_gpu_bytes(self) -> int:
        """The most GPU memory the plan uses at once: context, every resident part, one call's working memory."""
        w = self.weights
        resident = w.stage1 + (w.stage2 if self.stage2 else 0) + (w.t5_gpu if self.t5_on_gpu else 0)
        return CUDA_CONTEXT + resident + UNET_WORK

    @property
    def peak_host_bytes(self) -> int:
        """Host RAM at its peak: the app itself plus T5 when it runs on the CPU (the UNets load straight to the GPU)."""
        return HOST_RESERVE + (0 if self.t5_on_gpu else self.weights.t5_cpu)

    def describe(self) -> list[str]:
        """The plan in plain sentences, for the sidebar and the README."""
        w = self.weights
        if not self.fits:
            return [too_small_message(self.variant, "This GPU", self.gpu_bytes)]
        lines = [f"Stage I ({self.variant}, {gib(w.stage1)}) on the GPU."]
        lines.append(f"Stage II (IF-II-L, {gib(w.stage2)}) beside it, loaded when first asked for." if self.stage2
                     else f"Stage II (IF-II-L, {gib(w.stage2)}) does not fit beside it on this card: no 256 px "
                          "upscaling.")
        if self.t5_on_gpu:
            lines.append(f"T5 text encoder ({gib(w.t5_gpu)}) on the GPU too, loaded once for the first new prompt.")
        else:
            how = "loaded once and kept in RAM" if self.keep_t5 else "re-read from disk for each batch (too little RAM to keep it)"
            lines.append(f"T5 text encoder ({gib(w.t5_cpu)} in bf16) on the CPU, {how}: new prompts take longer "
                         "to embed (once each: embeddings are cached), and the GPU keeps serving everyone meanwhile.")
        lines.append(f"Peak GPU memory {gib(self.peak_gpu_bytes)} of {gib(self.gpu_bytes)}.")
        return lines


def min_gpu_bytes(variant: str, *, stage2: bool = False, t5: bool = False) -> int:
    """Total card memory that ``variant`` needs for stage I (+ stage II, + T5 on the GPU)."""
    w = weights(variant)
    return CUDA_CONTEXT + w.stage1 + UNET_WORK + (w.stage2 if stage2 else 0) + (w.t5_gpu if t5 else 0)


def plan_memory(variant: str, gpu_bytes: int, host_bytes: int | None = None, *, w: Weights | None = None) -> MemoryPlan:
    """The placement for ``variant`` on a card with ``gpu_bytes`` of total memory (see the module docstring)."""
    w = w or weights(variant)
    base = CUDA_CONTEXT + w.stage1 + UNET_WORK
    fits = base <= gpu_bytes
    stage2 = fits and base + w.stage2 <= gpu_bytes
    t5_on_gpu = stage2 and base + w.stage2 + w.t5_gpu <= gpu_bytes
    keep = t5_on_gpu or host_bytes is None or host_bytes >= HOST_RESERVE + w.t5_cpu
    return MemoryPlan(variant, gpu_bytes, host_bytes, w, fits, stage2, t5_on_gpu, keep)


def requirement(variant: str) -> str:
    """The one statement of what ``variant`` needs, used by the sidebar, Home, the errors and the README."""
    need = math.ceil(min_gpu_bytes(variant) / GIB * 10) / 10
    with2 = math.ceil(min_gpu_bytes(variant, stage2=True) / GIB * 10) / 10
    with_t5 = math.ceil(min_gpu_bytes(variant, stage2=True, t5=True) / GIB * 10) / 10
    return (f"{variant} needs a CUDA GPU with ≥ {need:g} GiB of memory ({with2:g} GiB with stage II's 256 px "
            f"upscaling, {with_t5:g} GiB to keep the T5 text encoder on the GPU too)")


def too_small_message(variant: str, gpu_name: str, gpu_bytes: int) -> str:
    """The card cannot hold ``variant``: say so, and name the largest variant that it can hold, if any."""
    smaller = [v for v in IF_VARIANTS if min_gpu_bytes(v) <= gpu_bytes]
    advice = (f"choose {smaller[0]} in the sidebar, which fits it" if smaller
              else "no IF variant fits it — the app stays on the built-in MNIST model")
    return f"{requirement(variant)}; {gpu_name} has {gib(gpu_bytes)}: {advice}"


def host_memory_bytes() -> int | None:
    """This machine's physical RAM, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None

"""How much memory PixNerd-XXL needs, from the real configurations, and where its parts go on a given card.

Weights are parameters × bytes per element, counted on PyTorch's meta device (no download, no memory): the denoiser
(lib.backends.pixnerd.config.XXL, 1,171,518,019 parameters) and the base Qwen3-1.7B prompt encoder (lib.backends.pixnerd.qwen_config,
1,720,574,976 parameters), in fp32 — the course's choice, 4 bytes — or bf16, 2 bytes:

    fp32: denoiser 4.4 GiB, encoder 6.4 GiB          bf16: denoiser 2.2 GiB, encoder 3.2 GiB

One CFG step is one forward pass on 2 rows (conditional and unconditional) at 512 × 512. Its working memory
(``step_activation_bytes``) peaks in the neural-field decoder — per patch θ (4·Dd²) and the normalised A (2·Dd²), per
pixel x (Dd), h = RMSNorm(x)·A (2·Dd) and silu(h) (2·Dd): 2 × 1,024 patches × 106,496 numbers = 0.81 GiB in fp32 —
above the encoder blocks' (per token the SwiGLU's 8H + 4H + 4H and the stream's H, plus the attention scores
G·N·(N + L) where the kernel materialises them: 0.41 GiB). In bf16 it is 0.59 GiB, not half: RMSNorm computes in
float32, and its float32 copies of x then outweigh silu's moment. The plan reserves ``WORK_MARGIN`` = 1.5 times the
estimate: on a 2-core EPYC the peak resident set grew by 1.00 GiB during an fp32 step and by 0.67 GiB during a bf16
step, 23 % and 13 % above the bare estimates (allocator rounding, the kernels' scratch space, the smaller tensors alive
beside the largest); bench/pixnerd_real_size.py measures it against the plan, on a GPU too (bench/gpu_check.sh).

A card's ``total_memory`` is not all usable: the CUDA context and the cuBLAS workspace live outside PyTorch's allocator
(lib.backends.if_memory.CUDA_CONTEXT). The plan (``plan_memory``):

    the denoiser on the GPU                     needs  context + denoiser + one step's work
    the prompt encoder beside it                needs  … + encoder + ENCODER_WORK
    otherwise the encoder runs on the CPU (host RAM: the encoder's weights), once per new prompt (embeddings cached)

which gives (``requirement``; tests/test_pixnerd_memory.py pins these figures)

    fp32: alone ≥ 6.2 GiB, with the encoder ≥ 12.9 GiB
    bf16: alone ≥ 3.7 GiB, with the encoder ≥ 7.2 GiB

so every card of ``CARDS`` — T4 (15 GiB), A10G / L4 (22.5 GiB), A100 40 / 80 GB, H100 80 GB — holds the denoiser and
the encoder together, in fp32 as the course runs them; the encoder moves to the CPU on smaller cards (fp32: 6.2 to
12.9 GiB, e.g. an 8 or 12 GB consumer card), and under 6.2 GiB only bf16 can fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from lib.backends.hub import LAZY_IMPORT
from lib.backends.if_memory import CUDA_CONTEXT, GIB, gib
from lib.backends.pixnerd.config import IMAGE_SIZE, XXL, PixNerdConfig

ELEMENT_BYTES = {"fp32": 4, "bf16": 2}
PRECISION_OF = {torch.float32: "fp32", torch.bfloat16: "bf16"}  # the dtypes PixNerd runs in (fp16 overflows Qwen3)
CFG_ROWS = 2  # one CFG step: the conditional and the unconditional row in one call
WORK_MARGIN = 1.5  # allocator rounding, kernel scratch, smaller tensors: the CPU measured up to + 23 %
ENCODER_WORK = 256 * 2**20  # a few 128-token prompts through Qwen3-1.7B: MBs of activations, plus cuBLAS's workspace
CARDS = {"T4": 15 * GIB, "A10G / L4": int(22.5 * GIB), "A100 40 GB": 40 * GIB, "A100 80 GB": 80 * GIB,
         "H100 80 GB": 80 * GIB}  # total memory as torch reports it, rounded


@functools.cache
def denoiser_params(config: PixNerdConfig = XXL) -> int:
    """Parameter count of the denoiser, built on the meta device."""
    from lib.backends.pixnerd.model import build_pixnerd

    return sum(p.numel() for p in build_pixnerd(config, device="meta").parameters())


@functools.cache
def encoder_params() -> int:
    """Parameter count of the base Qwen3-1.7B model (no LM head), built on the meta device."""
    from lib.backends.pixnerd.qwen_config import qwen3_1_7b_config

    with LAZY_IMPORT:  # transformers' lazy imports are not thread-safe (lib.backends.hub)
        from transformers import Qwen3Model
    with torch.device("meta"):
        return sum(p.numel() for p in Qwen3Model(qwen3_1_7b_config()).parameters())


def step_activation_bytes(config: PixNerdConfig = XXL, rows: int = CFG_ROWS, size: int = IMAGE_SIZE,
                          element_bytes: int = 4) -> int:
    """The largest set of tensors alive at once in one forward pass of ``rows`` images of ``size``², in bytes, without
    margin: the larger of the decoder's and the encoder's peaks (module docstring). In the decoder, per patch θ and A
    (6·Dd² numbers); per pixel the larger of two moments: at silu, x, h and silu(h) (5·Dd), and inside RMSNorm(x),
    which computes in float32, x and its normalised and weighted float32 copies (2·Dd × 4 bytes) — below float32 also
    the float32 copy of x and the result cast back."""
    p, d, h, eb = config.patch_size, config.decoder_hidden_size, config.hidden_size, element_bytes
    tokens = (size // p) ** 2  # image tokens (patches) per row
    in_norm = d * eb + 2 * d * 4 + (d * 4 + d * eb if eb < 4 else 0)
    decoder = rows * tokens * (6 * d * d * eb + p * p * max(5 * d * eb, in_norm))
    encoder = (rows * tokens * 17 * h + rows * config.num_groups * tokens * (tokens + config.txt_max_length)) * eb
    return max(decoder, encoder)


@dataclass(frozen=True)
class Sizes:
    """Bytes of the denoiser's and the encoder's weights, and of one step's working memory (with margin)."""

    denoiser: int
    encoder: int
    work: int


@functools.cache
def sizes(precision: str = "fp32", rows: int = CFG_ROWS) -> Sizes:
    nbytes = ELEMENT_BYTES[precision]
    return Sizes(denoiser=nbytes * denoiser_params(), encoder=nbytes * encoder_params(),
                 work=int(WORK_MARGIN * step_activation_bytes(rows=rows, element_bytes=nbytes)))


@dataclass(frozen=True)
class MemoryPlan:
    """Where the denoiser and the prompt encoder go on one card; ``fits`` is False when not even the denoiser does."""

    gpu_bytes: int
    precision: str
    sizes: Sizes
    fits: bool
    encoder_on_gpu: bool  # else on the CPU

    @property
    def peak_gpu_bytes(self) -> int:
        """Context + the resident weights + one step's work (+ the encoder's, when it is on the GPU)."""
        s = self.sizes
        return CUDA_CONTEXT + s.denoiser + s.work + (s.encoder + ENCODER_WORK if self.encoder_on_gpu else 0)

    def describe(self) -> list[str]:
        """The plan in plain sentences, for the sidebar."""
        s = self.sizes
        if not self.fits:
            return [f"{requirement(self.precision)}; this GPU has {gib(self.gpu_bytes)}"]
        lines = [f"PixNerd-XXL denoiser ({gib(s.denoiser)} in {self.precision}) on the GPU, with "
                 f"{gib(s.work)} for one CFG step at {IMAGE_SIZE} × {IMAGE_SIZE}."]
        if self.encoder_on_gpu:
            lines.append(f"Qwen3-1.7B prompt encoder ({gib(s.encoder)}) on the GPU too, loaded for the first new "
                         "prompt.")
        else:
            lines.append(f"Qwen3-1.7B prompt encoder ({gib(s.encoder)}) on the CPU: new prompts take longer to embed "
                         "(once each: embeddings are cached), and the GPU keeps sampling meanwhile.")
        lines.append(f"Peak GPU memory {gib(self.peak_gpu_bytes)} of {gib(self.gpu_bytes)}.")
        return lines


def min_gpu_bytes(precision: str = "fp32", *, encoder: bool = False) -> int:
    """Total card memory the denoiser needs (with the encoder on the GPU too: ``encoder=True``)."""
    s = sizes(precision)
    return CUDA_CONTEXT + s.denoiser + s.work + (s.encoder + ENCODER_WORK if encoder else 0)


def plan_memory(gpu_bytes: int, precision: str = "fp32") -> MemoryPlan:
    """The placement on a card with ``gpu_bytes`` of total memory (see the module docstring)."""
    fits = min_gpu_bytes(precision) <= gpu_bytes
    return MemoryPlan(gpu_bytes, precision, sizes(precision), fits,
                      encoder_on_gpu=fits and min_gpu_bytes(precision, encoder=True) <= gpu_bytes)


def requirement(precision: str = "fp32") -> str:
    """The one statement of what PixNerd needs, for the sidebar, the errors and the README."""
    alone, both = (math.ceil(min_gpu_bytes(precision, encoder=e) / GIB * 10) / 10 for e in (False, True))
    return (f"PixNerd-XXL in {precision} needs a CUDA GPU with ≥ {alone:g} GiB of memory ({both:g} GiB to keep the "
            "Qwen3-1.7B prompt encoder on the GPU too)")


def device_problem(device: torch.device | str, dtype: torch.dtype = torch.float32) -> str | None:
    """None if the XXL denoiser in ``dtype`` fits ``device`` (any CPU does: its RAM is not planned here), else what
    stands in the way — asked before anything is downloaded."""
    device = torch.device(device)
    if dtype not in PRECISION_OF:
        return f"PixNerd runs in {' or '.join(str(d).removeprefix('torch.') for d in PRECISION_OF)}, not {dtype}"
    if device.type != "cuda":
        return None
    plan = card_plan(device, dtype)
    if plan is None:
        return f"{requirement(PRECISION_OF[dtype])}; this machine has none"
    return None if plan.fits else plan.describe()[0]


def card_plan(device: torch.device | str, dtype: torch.dtype = torch.float32) -> MemoryPlan | None:
    """The plan for the CUDA card ``device`` names (None for a CPU, or where no CUDA is)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return plan_memory(torch.cuda.get_device_properties(device).total_memory, PRECISION_OF[dtype])


def encoder_device(device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.device:
    """Where Qwen3 goes beside a denoiser on ``device``: that GPU where its plan keeps the encoder there, else the
    CPU."""
    plan = card_plan(device, dtype)
    return torch.device(device) if plan is None or plan.encoder_on_gpu else torch.device("cpu")

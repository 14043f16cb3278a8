"""Mixed precision for the part-B UNets: bf16 autocast on channels_last activations, where the hardware has bf16 units.

Under ``torch.autocast(dtype=torch.bfloat16)`` the convolutions and linear layers compute in bf16 while the weights,
the optimiser state, BatchNorm's running statistics and the loss stay fp32. bf16 keeps fp32's 8-bit exponent, so unlike
fp16 it needs no loss scaling; it keeps 8 bits of mantissa, which the loss curve does not notice (pinned by
``tests/test_precision.py``: a bf16 run follows the fp32 loss curve of the same seed, and bf16 sampling gives the
same images as fp32 to within a few grey levels). channels_last (NHWC) is the layout oneDNN's and cuDNN's fast bf16
convolutions read without a transpose (and oneDNN's fastest for fp32 too).

Why it matters: on a 2-core Xeon with AMX, one training step of the class UNet (D = 64, batch 128) goes from
81 img/s (fp32) to 382 img/s (bench/RESULTS.md). Where bf16 has no hardware support it is emulated and *slower* than
fp32, so ``auto`` (the default) picks bf16 only on CPUs with AMX or AVX512-BF16 and on CUDA GPUs from Ampere on.
``DIFFUSION_LAB_PRECISION=fp32`` (or ``bf16``) in the environment overrides the choice for the whole app.

Precision, like the device, is how a run is computed, not what it computes: it is recorded in a run's provenance,
not in its cache key.
"""

from __future__ import annotations

import os

import torch

PRECISIONS = ("auto", "fp32", "bf16")
ENV_VAR = "DIFFUSION_LAB_PRECISION"


def default_device() -> torch.device:
    """Where part B trains and samples: the CUDA GPU if there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_bf16_units() -> str | None:
    """The CPU's bf16 hardware: "amx" (Intel's AMX tiles, the fastest), "avx512_bf16" (AVX-512 bf16 dot products, as
    on recent AMD EPYC), or None (bf16 would be emulated)."""
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    return "avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else None


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 convolutions in hardware (so they beat fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return cpu_bf16_units() is not None
    return False


def resolve(device: torch.device | str, precision: str | None = None) -> str:
    """"fp32" or "bf16" for ``device``: ``precision`` if given, else ``$DIFFUSION_LAB_PRECISION``, else ``auto``."""
    precision = precision or os.environ.get(ENV_VAR) or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


def autocast(device: torch.device | str, precision: str):
    """The autocast context for a resolved ``precision`` ("fp32" turns it off)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def prepare(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``model`` in the memory format it runs fastest in, in place: channels_last for bf16 anywhere and for fp32 on
    a CPU (oneDNN's NHWC convolutions: +50 % for a training step here), cuDNN's default layout for fp32 on CUDA."""
    device = next(model.parameters()).device
    fast = precision == "bf16" or device.type == "cpu"
    return model.to(memory_format=torch.channels_last if fast else torch.contiguous_format)


def for_inference(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """``model`` on ``device``, in eval mode and in the memory format of the app's precision there (in place).

    Done once, when a model is loaded, not in ``infer``: re-walking the parameters costs ~1.4 ms a call, nothing next
    to a CPU denoising step (~450 ms) but more than a small UNet's whole step on a GPU."""
    device = torch.device(device)
    return prepare(model.to(device).eval(), resolve(device))


def infer(model: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``model(*inputs)`` for inference at the app's precision for the model's device; the output is fp32.

    Any memory format gives the same result; ``for_inference`` (or ``lib.train.training.train``) sets the fast one."""
    device = next(model.parameters()).device
    precision = resolve(device)
    with torch.no_grad(), autocast(device, precision):
        return model(*inputs).float()

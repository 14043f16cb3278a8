"""An exponential moving average (EMA) of a model's weights, kept beside the weights the optimiser trains.

The spec trains the DDPMs of B2/B3 and samples with the last weights. Standard DDPM practice (Ho et al. 2020, and
every diffusion codebase since) samples with an average of the recent weights instead: after each optimiser step

    θ_ema ← d_k · θ_ema + (1 − d_k) · θ,    d_k = min(d, (1 + k) / (10 + k))

where k is the number of steps taken so far. The average smooths out the step-to-step noise of SGD, which a
denoiser's sample quality is sensitive to, without changing training at all (the optimiser never sees θ_ema).
The warm-up d_k keeps the random initial weights from dominating the early average; with d = 0.999 the average spans
about the last 1/(1 − d) = 1,000 steps, two of the spec's 469-step epochs, while the learning rate has decayed to
≈ 1e-4. That decay is why the average barely differs here: the spec's ExponentialLR makes the last epochs' steps ten
times smaller than the first, which already averages the last weights, and the shipped B2 run's EMA draws digits as
confidently as its last weights do (bench/RESULTS.md). ``relative_distance`` measures how far apart the two are.

BatchNorm's running mean and variance are averaged the same way, so that the statistics the averaged network
normalises with come from the same stretch of training as its weights; integer buffers (the batch counters) are copied.
"""

from __future__ import annotations

import copy

import torch

EMA_DECAY = 0.999


def decay_at(step: int, decay: float = EMA_DECAY) -> float:
    """d_k = min(d, (1 + k) / (10 + k)) after ``step`` = k optimiser steps have been taken before this update."""
    return min(decay, (1 + step) / (10 + step))


def ema_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``model`` to hold the average (it starts at the model's current weights)."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float = EMA_DECAY) -> None:
    """One EMA step: θ_ema ← θ_ema + (1 − d_k)(θ − θ_ema) for every parameter and floating-point buffer; integer
    buffers are copied.

    As two multi-tensor ("foreach") calls, lerp and copy, the same arithmetic as one ``lerp_`` / ``copy_`` per tensor:
    on a GPU, where the small part-B UNets' training steps are bound by kernel launches, that is two launches a step
    instead of one per tensor (137 for the class UNet, about as many as its forward pass)."""
    weight = 1.0 - decay_at(step, decay)
    pairs = list(zip(ema.state_dict().values(), model.state_dict().values()))
    floats = [pair for pair in pairs if pair[0].is_floating_point()]
    counters = [pair for pair in pairs if not pair[0].is_floating_point()]
    if floats:
        torch._foreach_lerp_(*map(list, zip(*floats)), weight)
    if counters:
        torch._foreach_copy_(*map(list, zip(*counters)))


@torch.no_grad()
def relative_distance(ema: torch.nn.Module, model: torch.nn.Module) -> float:
    """‖θ_ema − θ‖ / ‖θ‖ over all parameters (buffers excluded): how far the average sits from the last weights."""
    apart = sum((a.double() - b.double()).pow(2).sum() for a, b in zip(ema.parameters(), model.parameters()))
    size = sum(b.double().pow(2).sum() for b in model.parameters())
    return float((apart / size).sqrt())

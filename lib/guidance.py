"""Classifier-free guidance, the same for both objectives: the DDPM's noise ε and the flow's velocity v.

    g = g_u + γ (g_c − g_u)       γ = 0 unconditional, γ = 1 conditional, γ > 1 past the condition

Guided predictors call the model once on a batch of both halves, [x_1 … x_n | x_1 … x_n] with conditions
[c_1 … c_n | ∅ … ∅] (``guidance_batch``); lib.ddpm.sampling.guided_predictions and lib.flow.euler.guided_velocities
are that call for each model contract.
"""

from __future__ import annotations

from typing import Sequence

import torch


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """g_u + γ (g_c − g_u) for a conditional and an unconditional prediction (ε or v) of the same inputs."""
    return uncond + scale * (cond - uncond)


def condition_rows(cond: torch.Tensor, n: int) -> torch.Tensor:
    """A condition of one row (a digit's one-hot (1, 10), a prompt's embedding (1, L, D)) as ``n`` rows, a view."""
    return cond.expand(n, *cond.shape[1:])


def guidance_batch(inputs: Sequence[torch.Tensor], conds: Sequence[torch.Tensor],
                   uncond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs stacked, [x_1 … x_n] (each a batch of b rows), their conditions as rows, [c_1 … c_n] (a condition
    of one row is shared by its batch), and as many rows of the null condition ∅."""
    b, n = inputs[0].shape[0], len(inputs)
    cond_rows = torch.cat([condition_rows(c, b) for c in conds])
    return torch.cat(list(inputs)), cond_rows, condition_rows(uncond, b * n)

"""SDEdit (1.7): x = forward(x_orig, t[i_start]), then the one ``denoise`` loop from i_start with CFG.
``sdedit_strip`` runs several i_starts as one batch along the shared tail of the timestep list.

The flow edition's image-to-image editing (3.1, 3.2) is the same idea on the straight path: x_start = (1 − t_s)·ε + t_s·x₁,
then the one Euler loop from t_s to 1 with CFG (``flow_edit``); a larger t_s keeps more of the image (the DDPM's larger
i_start does too)."""

from __future__ import annotations

from typing import Sequence

import torch

from lib.ddpm.diffusion import ddpm_step
from lib.ddpm.sampling import NoiseModel, StepCallback, cfg_predictor, denoise_on, noise_to, randn
from lib.flow import VelocityModel, euler
from lib.flow.euler import StepCallback as FlowStepCallback, cfg_predictor as cfg_velocity
from lib.flow.path import interpolate

def sdedit(
    model: NoiseModel,
    image: torch.Tensor,
    *,
    cond: torch.Tensor,
    scale: float,
    i_start: int,
    stride: int,
    generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Project ``image`` ((B, C, H, W) in [−1, 1]) onto the image manifold: noise it to timesteps[i_start], denoise."""
    ts = _sdedit_timesteps(model, stride, [i_start])
    x = noise_to(image, ts[i_start], model.schedule, generator)
    predict = cfg_predictor(model, cond, model.null_condition(), scale)
    return denoise_on(model, x, ts, predict, generator, i_start, on_step=on_step)


def _sdedit_timesteps(model: NoiseModel, stride: int, i_starts: Sequence[int]) -> list[int]:
    """The strided timesteps, after checking that every i_start leaves at least one step to run."""
    ts = model.timesteps(stride)
    for i_start in i_starts:
        if not 0 <= i_start < len(ts) - 1:
            raise ValueError(f"i_start must lie in 0 … {len(ts) - 2} for stride {stride}")
    return ts


def sdedit_strip(
    model: NoiseModel,
    image: torch.Tensor,
    *,
    cond: torch.Tensor,
    scale: float,
    i_starts: Sequence[int],
    stride: int,
    seed: int,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """SDEdit of ``image`` ((1, C, H, W)) for every i_start (ascending) in ONE batched run: (len(i_starts), C, H, W).

    With N = len(timesteps) − 1, the edit from i_start runs the last K = N − i_start steps, all of which lie on the tail
    that the smallest i_start runs. So the loop walks that tail once; the edit for i_start joins the batch (noised to
    timesteps[i_start]) when the loop reaches step i_start. Every row draws its noise from its own generator seeded
    with ``seed``, in the order its own run would, so row r equals ``sdedit(i_start=i_starts[r])`` with that seed.
    Cost: N − min(i_start) model calls instead of Σ (N − i_start); the rows stay Σ (N − i_start) (× 2 with CFG).
    """
    if list(i_starts) != sorted(i_starts) or not i_starts:
        raise ValueError(f"i_starts must be a non-empty ascending list, got {list(i_starts)}")
    ts = _sdedit_timesteps(model, stride, i_starts)
    gens = [torch.Generator(device=model.device).manual_seed(seed) for _ in i_starts]
    predict = cfg_predictor(model, cond, model.null_condition(), scale)
    x, joined = image[:0], 0
    with torch.no_grad():
        for i in range(i_starts[0], len(ts) - 1):
            while joined < len(i_starts) and i_starts[joined] == i:
                x = torch.cat([x, noise_to(image, ts[i], model.schedule, gens[joined])])
                joined += 1
            eps, var = predict(x, ts[i])
            noise = torch.cat([randn(image.shape, g, like=image) for g in gens[:joined]])
            x, x0 = ddpm_step(x, eps, ts[i], ts[i + 1], model.schedule, variance_type=model.variance_type,
                              predicted_variance=var, noise=noise)
            if on_step is not None:
                on_step(i, ts[i + 1], x, x0)
    return x


def flow_edit(model: VelocityModel, image: torch.Tensor, eps: torch.Tensor, *, cond: torch.Tensor,
              scale: float, t_starts: Sequence[float], h: float,
              on_step: FlowStepCallback | None = None) -> torch.Tensor:
    """The edit of ``image`` ((1, C, H, W), in the model's value range) from every start time in ``t_starts``, all
    from the same noise ``eps`` (the course edits with noise(180) throughout): (len(t_starts), C, H, W). Each start
    runs its own ⌈(1 − t_s)/h⌉ Euler steps (their time grids differ, so the runs are not batched together);
    ``on_step`` follows every step of every run."""
    predict = cfg_velocity(model, cond, model.null_condition(), scale)
    return torch.cat([euler(interpolate(image, eps, t_s), t_s, h, predict, on_step=on_step) for t_s in t_starts])

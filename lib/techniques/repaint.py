"""RePaint's resampling (Lugmayr et al. 2022) and soft masks: the pieces ``lib.techniques.inpainting.inpaint`` adds to the plain
RePaint update.

**Resampling.** Replacing the kept region after every step makes it *consistent in noise level* with the generated
region but not in *content*: the model only sees the kept pixels from the next step on, so the hole may already have
committed to something that does not fit. RePaint therefore goes down ``jump_length`` steps, then jumps back up the
same number of steps by re-noising the whole image, and denoises them again — ``jump_n_sample`` passes in all, so the
hole gets ``jump_n_sample − 1`` more chances to agree with its surroundings.

**The jump back.** On the strided list a jump goes from t' (less noise) to t > t' in one transition. With
x_t' = √ᾱ_t' x0 + √(1 − ᾱ_t') ε, drawing

    x_t = √(ᾱ_t / ᾱ_t') x_t' + √(1 − ᾱ_t / ᾱ_t') z,   z ~ N(0, I)

gives x_t = √ᾱ_t x0 + n with Var n = (ᾱ_t / ᾱ_t')(1 − ᾱ_t') + 1 − ᾱ_t / ᾱ_t' = 1 − ᾱ_t: exactly q(x_t | x0). It is
the forward kernel q(x_t | x_t') = N(√(ᾱ_t / ᾱ_t') x_t', (1 − ᾱ_t / ᾱ_t') I); for t = t' + 1 it is RePaint's
N(√(1 − β_t) x_t', β_t I), and composing the one-step kernels from t' up to t gives the same Gaussian.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lib.ddpm.diffusion import q_sample
from lib.ddpm.sampling import randn
from lib.ddpm.schedules import Schedule


def jump_points(num_steps: int, jump_length: int) -> list[int]:
    """The numbers of steps still to go at which RePaint jumps back: 1, 1 + j, 1 + 2j, … while a jump of j steps
    stays inside the list (RePaint's ``get_schedule_jump`` jumps at its t = 0, j, 2j, … < T − j, one step before each
    multiple of j; it never jumps from the clean image)."""
    return [k + 1 for k in range(0, num_steps - jump_length, jump_length)]


def resampling_path(num_steps: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """RePaint's time schedule as positions in a list of ``num_steps`` + 1 timesteps, from 0 (noisiest) to
    ``num_steps`` (clean end). A move +1 is one denoising step (one model call); a move −``jump_length`` is a jump back
    by re-noising. Each jump point is left ``jump_n_sample − 1`` times by a jump; ``jump_n_sample`` = 1 is the plain
    descent 0, 1, …, N."""
    if jump_length < 1 or jump_n_sample < 1:
        raise ValueError("jump_length and jump_n_sample must be at least 1")
    jumps_left = dict.fromkeys(jump_points(num_steps, jump_length), jump_n_sample - 1)
    pos, path = 0, [0]
    while pos < num_steps:
        pos += 1
        path.append(pos)
        to_go = num_steps - pos
        if jumps_left.get(to_go, 0) > 0:
            jumps_left[to_go] -= 1
            pos -= jump_length
            path.append(pos)
    return path


def model_calls(num_steps: int, jump_length: int, jump_n_sample: int) -> int:
    """Closed form of the path's +1 moves: N + (r − 1) · j · (⌈N / j⌉ − 1) (the last term 0 when j ≥ N).

    Each of the ⌈N / j⌉ − 1 jump points (``jump_points``) sends the sampler back j steps, r − 1 times, and each jump
    costs the j steps again."""
    return num_steps + (jump_n_sample - 1) * jump_length * max(0, math.ceil(num_steps / jump_length) - 1)


def descents(path: list[int]) -> list[tuple[int, int]]:
    """The path split into its runs of denoising steps, as (first, last) positions: jumps happen between runs."""
    runs, start = [], path[0]
    for a, b in zip(path, path[1:]):
        if b < a:
            runs.append((start, a))
            start = b
    runs.append((start, path[-1]))
    return runs


def call_timesteps(timesteps: list[int], path: list[int]) -> list[int]:
    """The timestep t the model sees at each model call, in order (what the page plots against the call index)."""
    return [timesteps[a] for a, b in zip(path, path[1:]) if b == a + 1]


def jump_back(x: torch.Tensor, t_from: int, t_to: int, schedule: Schedule, generator: torch.Generator) -> torch.Tensor:
    """x_t ~ q(x_t | x_t') = N(√(ᾱ_t / ᾱ_t') x_t', (1 − ᾱ_t / ᾱ_t') I) from t' = ``t_from`` up to t = ``t_to``."""
    if not t_to > t_from:
        raise ValueError(f"a jump back goes to a noisier timestep, got {t_from} → {t_to}")
    return q_sample(x, schedule.abar(t_to) / schedule.abar(t_from), randn(x.shape, generator, like=x))


def feathered(mask: torch.Tensor, width: int) -> torch.Tensor:
    """A soft copy of the 0/1 ``mask`` (…, H, W): the mean of the mask eroded and dilated by 0 … ``width`` pixels.

    A pixel d pixels inside the edge (chessboard distance, d ≥ 1) gets (min(d, w + 1) + w) / (2w + 1), one d pixels
    outside gets max(0, w + 1 − d) / (2w + 1): exactly 1 deeper than w, exactly 0 farther than w, a linear ramp
    across the edge, and the hard mask for w = 0. The image border is not an edge (pooling pads with −∞)."""
    if width < 0:
        raise ValueError("the feather width must be at least 0")
    if width == 0:
        return mask
    m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    grown, shrunk, total = m, m, m.clone()
    for _ in range(width):
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        shrunk = -F.max_pool2d(-shrunk, 3, stride=1, padding=1)
        total += grown + shrunk
    return (total / (2 * width + 1)).reshape(mask.shape).to(mask.dtype)

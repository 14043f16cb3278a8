"""RePaint's resampling schedule, the jump back and the feathered mask (lib/techniques/repaint.py)."""

from __future__ import annotations

import pytest
import torch

from lib.techniques.repaint import (call_timesteps, descents, feathered, jump_back, jump_points, model_calls,
                         resampling_path)
from lib.ddpm.schedules import chain_timesteps, linear_schedule


def moves(path):
    return [b - a for a, b in zip(path, path[1:])]


@pytest.mark.parametrize("n, j, r", [(30, 5, 3), (30, 10, 2), (250, 10, 10), (7, 3, 2), (31, 5, 4), (5, 5, 3),
                                     (4, 10, 3), (30, 1, 1), (30, 1, 3)])
def test_the_path_has_repaints_shape_and_the_closed_form_count_of_model_calls(n, j, r):
    path = resampling_path(n, j, r)
    steps = moves(path)
    assert path[0] == 0 and path[-1] == n
    assert set(steps) <= {1, -j}  # one step down (a model call) or a jump back by j
    assert steps.count(1) == model_calls(n, j, r) == n + (r - 1) * j * len(jump_points(n, j))
    assert steps.count(-j) == (r - 1) * len(jump_points(n, j))
    jumps_from = [a for a, b in zip(path, path[1:]) if b < a]
    for k in jump_points(n, j):  # every jump point is left by a jump r − 1 times
        assert jumps_from.count(n - k) == r - 1
    assert min(path) >= 0


def test_known_schedules():
    # RePaint's paper setting (T = 250, j = 10, r = 10): 24 jump points, 250 + 9 · 10 · 24 model calls
    assert model_calls(250, 10, 10) == 2410 and len(jump_points(250, 10)) == 24
    # jump points one step before the clean end and every j steps above it, as RePaint's t = 0, j, 2j, … < T − j
    assert jump_points(30, 5) == [1, 6, 11, 16, 21]
    assert jump_points(7, 3) == [1, 4]  # positions 6 and 3 of 0 … 7
    assert resampling_path(7, 3, 2) == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 7]
    assert resampling_path(6, 2, 1) == list(range(7))  # r = 1: the plain descent
    assert descents(resampling_path(7, 3, 2)) == [(0, 3), (0, 6), (3, 7)]


def test_call_timesteps_are_the_timesteps_the_model_sees():
    ts = chain_timesteps(300, 10)  # 299, 289, …, 9, −1: 30 steps
    path = resampling_path(30, 5, 3)
    t = call_timesteps(ts, path)
    assert len(t) == model_calls(30, 5, 3) == 80
    assert t[:9] == ts[:9] and t[9] == ts[4]  # down to position 9 (t = 209), back to position 4 (t = 259)
    assert t[-1] == 9 and -1 not in t


def test_jump_back_is_the_forward_kernel_from_t_prime_to_t():
    """x_t = √(ᾱ_t/ᾱ_t') x_t' + √(1 − ᾱ_t/ᾱ_t') z: from x_t' ~ q(x_t' | x0) it lands on q(x_t | x0)."""
    sched = linear_schedule(300)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000,), 0.7, dtype=torch.float64)
    t_from, t_to = 49, 99
    x_from = sched.abar(t_from) ** 0.5 * x0 + (1 - sched.abar(t_from)) ** 0.5 * torch.randn(x0.shape, generator=g,
                                                                                            dtype=x0.dtype)
    x_to = jump_back(x_from, t_from, t_to, sched, g)
    assert x_to.mean().item() == pytest.approx(sched.abar(t_to) ** 0.5 * 0.7, abs=0.02)
    assert x_to.var().item() == pytest.approx(1 - sched.abar(t_to), rel=0.03)
    with pytest.raises(ValueError):
        jump_back(x_from, t_to, t_from, sched, g)


def test_feathered_mask_is_one_deep_inside_zero_far_outside_and_monotone_across_the_edge():
    hard = torch.zeros(1, 1, 28, 28)
    hard[..., 14:, :] = 1.0  # the bottom half, touching the image border
    w = 3
    soft = feathered(hard, w)
    assert soft.shape == hard.shape and soft.min() >= 0 and soft.max() <= 1
    assert torch.equal(soft[..., 14 + w:, :], torch.ones_like(soft[..., 14 + w:, :]))  # deep inside (and at the border)
    assert torch.equal(soft[..., : 14 - w, :], torch.zeros_like(soft[..., : 14 - w, :]))  # far outside
    column = soft[0, 0, :, 5]
    assert torch.all(column[1:] >= column[:-1]) and (column[1:] > column[:-1]).sum() == 2 * w + 1  # a ramp
    assert ((soft > 0) & (soft < 1)).any()
    assert torch.equal(feathered(hard, 0), hard)
    assert soft[0, 0, 13, 5] == pytest.approx(w / (2 * w + 1))  # the last pixel outside, the first inside
    assert soft[0, 0, 14, 5] == pytest.approx((w + 1) / (2 * w + 1))

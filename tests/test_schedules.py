"""Noise schedules against diffusers' own tables, and the strided timestep lists of spec 1.4."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler

from lib.ddpm.schedules import Schedule, linear_schedule, schedule_from_diffusers, strided_timesteps


def test_linear_schedule_matches_diffusers_ddpm_scheduler():
    ref = DDPMScheduler(num_train_timesteps=300, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    ours = linear_schedule(300, 1e-4, 0.02)
    assert ours.num_timesteps == 300
    # diffusers keeps float32 tables; ours are float64, so agreement is to float32 precision.
    torch.testing.assert_close(ours.betas, ref.betas.double(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod.double(), rtol=1e-6, atol=1e-9)
    # the spec's numbers: β_0 = 1e-4, β_299 = 0.02, evenly spaced
    assert ours.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert ours.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert torch.diff(ours.betas).std().item() < 1e-15
    assert ours.alphas_cumprod[-1].item() == pytest.approx(math.prod(1 - b for b in ours.betas.tolist()), rel=1e-12)


def test_linear_schedule_defaults_are_the_spec():
    assert torch.equal(linear_schedule().betas, linear_schedule(300, 1e-4, 0.02).betas)
    with pytest.raises(ValueError):
        linear_schedule(0)


def test_deepfloyd_cosine_schedule_via_schedule_from_diffusers():
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    ours = schedule_from_diffusers(ref)
    assert ours.num_timesteps == 1000
    assert ours.betas.dtype == torch.float64
    torch.testing.assert_close(ours.betas, ref.betas.double(), rtol=0, atol=0)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod.double(), rtol=2e-6, atol=1e-12)
    # and the closed form of the cosine schedule, ᾱ_t = f(t + 1) / f(0) with f(s) = cos²((s/T + 0.008)/1.008 · π/2),
    # everywhere the 0.999 cap on β is inactive (it only bites at the very last step)
    f = lambda s: math.cos((s / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    closed = torch.tensor([f(t + 1) / f(0) for t in range(999)], dtype=torch.float64)
    torch.testing.assert_close(ours.alphas_cumprod[:999], closed, rtol=1e-4, atol=1e-9)
    assert ours.betas[-1].item() == pytest.approx(0.999, rel=1e-6)


def test_schedule_accessors():
    s = Schedule(torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64))
    torch.testing.assert_close(s.alphas, torch.tensor([0.9, 0.8, 0.5], dtype=torch.float64))
    torch.testing.assert_close(s.alphas_cumprod, torch.tensor([0.9, 0.72, 0.36], dtype=torch.float64))
    assert s.abar(-1) == 1.0
    assert s.abar(1) == pytest.approx(0.72)
    torch.testing.assert_close(s.snr(), torch.tensor([9.0, 0.72 / 0.28, 0.36 / 0.64], dtype=torch.float64))
    assert torch.all(torch.diff(linear_schedule().snr()) < 0)  # noise only grows along the chain


def test_strided_timesteps_course_list():
    ts = strided_timesteps(1000, 30)
    assert ts == list(range(990, -1, -30))
    assert ts[:3] == [990, 960, 930] and ts[-2:] == [30, 0]
    assert len(ts) == 34
    assert ts.index(690) == 10  # spec 1.4: i_start = 10 ⇒ t = 690


def test_strided_timesteps_other_strides_and_start():
    assert strided_timesteps(300, 1) == list(range(299, -1, -1))
    assert strided_timesteps(300, 10) == list(range(290, -1, -10))
    assert strided_timesteps(300, 299) == [299, 0]
    assert strided_timesteps(1000, 30, start=999) == list(range(999, -1, -30))  # may end above 0 when asked
    for t, stride in [(1000, 30), (300, 7), (10, 3)]:
        ts = strided_timesteps(t, stride)
        assert ts[-1] == 0 and ts[0] < t and ts[0] + stride >= t
        assert set(torch.diff(torch.tensor(ts)).tolist()) == {-stride}


@pytest.mark.parametrize(
    "args",
    [(1000, 0), (1000, -5), (1000, 1000), (1000, 1500), (300, 10, 300), (300, 10, -1)],
)
def test_strided_timesteps_rejects_bad_strides(args):
    with pytest.raises(ValueError):
        strided_timesteps(*args)

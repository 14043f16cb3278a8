"""lib.flow: the flow edition's straight path, Euler loop and classifier-free guidance, held to closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from lib.guidance import classifier_free_guidance
from lib.flow import (ancestral_step, cfg_predictor, euler, euler_times, guided_velocities, interpolate,
                      noise_estimate, one_step_estimate, posterior_noise, sample, scale_from_course_w, velocity_target)

F64 = torch.float64


def gauss(*shape, seed=0):
    return torch.randn(*shape, generator=gauss_source(seed), dtype=F64)


def gauss_source(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the path ---------------------------------------------------------------------------------------------------------

def test_interpolate_runs_from_the_noise_at_0_to_the_image_at_1():
    x1, eps = gauss(2, 1, 4, 4, seed=1), gauss(2, 1, 4, 4, seed=2)
    assert torch.equal(interpolate(x1, eps, 0.0), eps)
    assert torch.equal(interpolate(x1, eps, 1.0), x1)
    torch.testing.assert_close(interpolate(x1, eps, 0.25), 0.75 * eps + 0.25 * x1)
    # one time per row: each row is its own interpolation
    t = torch.tensor([0.0, 0.6], dtype=F64)
    rows = interpolate(x1, eps, t)
    assert torch.equal(rows[0], eps[0])
    torch.testing.assert_close(rows[1], 0.4 * eps[1] + 0.6 * x1[1])
    torch.testing.assert_close(interpolate(x1, eps, t[:, None]), rows)  # (B, 1) too


def test_the_velocity_target_is_the_derivative_of_the_path():
    x1, eps = gauss(3, 1, 4, 4, seed=3), gauss(3, 1, 4, 4, seed=4)
    u = velocity_target(x1, eps)
    assert torch.equal(u, x1 - eps)
    for t in (0.0, 0.3, 0.9):  # the path is a straight line: any difference quotient is exact
        torch.testing.assert_close((interpolate(x1, eps, t + 0.1) - interpolate(x1, eps, t)) / 0.1, u)


def test_the_one_step_estimate_is_exact_for_the_true_velocity():
    x1, eps = gauss(2, 1, 4, 4, seed=5), gauss(2, 1, 4, 4, seed=6)
    for t in (0.0, 0.25, 0.5, 0.93, torch.tensor([0.1, 0.8], dtype=F64)):
        x_t = interpolate(x1, eps, t)
        torch.testing.assert_close(one_step_estimate(x_t, t, velocity_target(x1, eps)), x1)


# --- the Euler time grid ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t_start, steps, last", [(0.0, 50, 0.02), (0.5, 25, 0.02), (0.93, 4, 0.01)])
def test_euler_times_with_h_0_02(t_start, steps, last):
    """The notebook's checks (§2 1.5): 50 velocity calls from 0, 25 from 0.5 and 4 from 0.93, ending exactly at 1."""
    times = euler_times(t_start, 0.02)
    assert len(times) == steps + 1
    assert times[0] == t_start and times[-1] == 1.0
    assert all(a < b for a, b in zip(times, times[1:]))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:-1] == pytest.approx([0.02] * (steps - 1), abs=1e-12)
    assert gaps[-1] == pytest.approx(last, abs=1e-12)
    # t_k = t_start + k·h, computed (not a running sum that drifts)
    assert times[:-1] == [t_start + k * 0.02 for k in range(steps)]


def test_euler_times_by_number_of_steps():
    assert euler_times(0.0, steps=300) == euler_times(0.0, 1 / 300)
    assert len(euler_times(0.0, steps=300)) == 301 and len(euler_times(0.0, steps=50)) == 51
    assert euler_times(0.5, steps=4) == [0.5, 0.625, 0.75, 0.875, 1.0]
    # a stride of 3 on the 50-step grid: ⌈50 / 3⌉ = 17 steps, the last one 2/50
    times = euler_times(0.0, 3 / 50)
    assert len(times) == 18 and times[-1] - times[-2] == pytest.approx(0.04)


@pytest.mark.parametrize("kwargs", [dict(t_start=1.0, h=0.1), dict(t_start=-0.1, h=0.1), dict(t_start=0.0),
                                    dict(t_start=0.0, h=0.1, steps=10), dict(t_start=0.0, h=0.0),
                                    dict(t_start=0.0, steps=0)])
def test_euler_times_rejects(kwargs):
    with pytest.raises(ValueError):
        euler_times(**kwargs)


# --- the loop ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t_start, calls", [(0.0, 50), (0.5, 25), (0.93, 4)])
def test_euler_calls_the_velocity_once_per_step_and_integrates_a_constant_field_exactly(t_start, calls):
    seen = []
    c = gauss(1, 1, 3, 3, seed=7)

    def constant(x, t):
        seen.append(t)
        return c.expand_as(x)

    x0 = gauss(2, 1, 3, 3, seed=8)
    out = euler(x0, t_start, 0.02, constant)
    assert len(seen) == calls and seen[0] == t_start and seen[-1] < 1.0
    torch.testing.assert_close(out, x0 + (1 - t_start) * c, rtol=0, atol=1e-12)


def euler_linear(a: float, x0: torch.Tensor, t_start: float, h: float) -> torch.Tensor:
    return euler(x0, t_start, h, lambda x, t: a * x)


def test_a_linear_field_follows_its_euler_recursion_and_converges_at_first_order():
    """dx/dt = a·x: Euler gives x0 · Π_k (1 + a Δt_k) exactly, and tends to x0 · e^{a (1 − t0)} with an error ∝ h."""
    a, t_start, x0 = -1.5, 0.3, gauss(4, 1, 2, 2, seed=9)
    times = euler_times(t_start, 0.02)
    product = math.prod(1 + a * (t1 - t0) for t0, t1 in zip(times, times[1:]))
    torch.testing.assert_close(euler_linear(a, x0, t_start, 0.02), x0 * product, rtol=1e-12, atol=0)
    exact = x0 * math.exp(a * (1 - t_start))
    errors = [(euler_linear(a, x0, t_start, h) - exact).abs().max().item() for h in (0.02, 0.01, 0.005)]
    # the global error of Euler ≈ h · |a|² (1 − t0) / 2 · |x(1)|: within that bound, and halving with h
    bound = 0.02 * a * a * (1 - t_start) / 2 * exact.abs().max().item()
    assert 0.5 * bound < errors[0] < 1.1 * bound
    assert errors[0] / errors[1] == pytest.approx(2, rel=0.05) and errors[1] / errors[2] == pytest.approx(2, rel=0.05)


def test_the_shortened_last_step_lands_on_the_image_of_the_ideal_field():
    """For one image x₁ the ideal field is v(x, t) = (x₁ − x) / (1 − t); the last step, of size exactly 1 − t,
    lands on x₁ whatever came before."""
    x1, noise = gauss(1, 1, 3, 3, seed=10), gauss(1, 1, 3, 3, seed=11)
    out = euler(noise, 0.0, 0.03, lambda x, t: (x1 - x) / (1 - t))  # 34 steps, the last one 0.01
    torch.testing.assert_close(out, x1, rtol=0, atol=1e-12)


def test_on_step_and_after_step():
    """on_step sees (k, t', the state at t', x̂₁ of the step's velocity); after_step rewrites the state the next step
    starts from — here inpainting's re-imposition of known pixels at the new time."""
    x_orig, eps = gauss(1, 1, 4, 4, seed=12), gauss(1, 1, 4, 4, seed=13)
    keep = torch.zeros(1, 1, 4, 4, dtype=F64)
    keep[..., :2] = 1  # the left half is known
    field = lambda x, t: torch.ones_like(x)  # noqa: E731
    steps = []

    def reimpose(x, t):
        return keep * interpolate(x_orig, eps, t) + (1 - keep) * x

    def record(k, t, x, x1_hat):
        steps.append((k, t, x.clone(), x1_hat.clone()))

    out = euler(eps, 0.0, 0.25, field, after_step=reimpose, on_step=record)
    assert [(k, t) for k, t, _, _ in steps] == [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0)]
    assert torch.equal(out[..., :2], x_orig[..., :2])  # known pixels: the image itself at t = 1
    torch.testing.assert_close(out[..., 2:], eps[..., 2:] + 1.0)  # unknown ones: the field integrated
    torch.testing.assert_close(steps[1][2][..., 2:], eps[..., 2:] + 0.5)
    # x̂₁ of step 1 (from t = 0.25) is its start plus 0.75 · v
    torch.testing.assert_close(steps[1][3], steps[0][2] + 0.75)


# --- guidance and sampling --------------------------------------------------------------------------------------------

class AffineVelocity:
    """A stand-in VelocityModel: v(x, t, c) = (1 + Σc) · x + t, which records each call's batch size."""

    name = "affine"
    image_shape = (1, 2, 2)
    value_range = (0.0, 1.0)
    device = torch.device("cpu")
    dtype = F64

    def __init__(self):
        self.calls = []

    def velocity(self, x, t, cond):
        self.calls.append(x.shape[0])
        return (1 + cond.sum(1)).view(-1, 1, 1, 1) * x + t

    def encode_prompt(self, prompt):
        return torch.tensor([[float(prompt)]], dtype=F64)

    def null_condition(self):
        return torch.zeros(1, 1, dtype=F64)


def test_cfg_is_the_one_formula_in_one_batched_call():
    model = AffineVelocity()
    x = gauss(3, 1, 2, 2, seed=14)
    cond, uncond = model.encode_prompt("2"), model.null_condition()
    v_c, v_u = 3 * x + 0.4, x + 0.4
    model.calls.clear()
    torch.testing.assert_close(cfg_predictor(model, cond, uncond, 5.0)(x, 0.4), v_u + 5 * (v_c - v_u))
    assert model.calls == [6]  # conditional and unconditional rows together
    model.calls.clear()
    torch.testing.assert_close(cfg_predictor(model, cond, uncond, 1.0)(x, 0.4), v_c)  # γ = 1: the conditional alone
    torch.testing.assert_close(cfg_predictor(model, cond, uncond, 0.0)(x, 0.4), v_u)
    assert model.calls == [3, 3]
    # the formula itself at γ = 1 is the conditional prediction too
    torch.testing.assert_close(classifier_free_guidance(v_c, v_u, 1.0), v_c)


def test_several_views_share_one_call():
    model = AffineVelocity()
    x, y = gauss(2, 1, 2, 2, seed=15), gauss(2, 1, 2, 2, seed=16)
    a, b = model.encode_prompt("1"), model.encode_prompt("3")
    model.calls.clear()
    va, vb = guided_velocities(model, [x, y], [a, b], model.null_condition(), 0.5, 2.0)
    assert model.calls == [8]
    torch.testing.assert_close(va, (x + 0.5) + 2 * x)  # v_u + 2 (v_c − v_u), v_c − v_u = Σc · x
    torch.testing.assert_close(vb, (y + 0.5) + 2 * 3 * y)


def test_part_a_course_w_is_gamma_w_plus_1():
    """v_c + w (v_c − v_u) = v_u + (w + 1)(v_c − v_u): the course's w = 7 is γ = 8."""
    v_c, v_u = gauss(2, 3, seed=17), gauss(2, 3, seed=18)
    assert scale_from_course_w(7) == 8
    torch.testing.assert_close(classifier_free_guidance(v_c, v_u, scale_from_course_w(7)), v_c + 7 * (v_c - v_u))
    torch.testing.assert_close(classifier_free_guidance(v_c, v_u, scale_from_course_w(0)), v_c)


def test_sample_starts_from_seeded_noise_and_integrates_to_1():
    model = AffineVelocity()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(), steps=10)
    b = sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(), h=0.1)
    assert a.shape == (5, 1, 2, 2) and model.calls == [5] * 20
    torch.testing.assert_close(a, b)
    # dx/dt = x + t from x0 = the generator's noise: Euler's recursion x ← x + h (x + t)
    x = torch.randn((5, 1, 2, 2), generator=gen()).to(F64)
    for k in range(10):
        x = x + 0.1 * (x + 0.1 * k)
    torch.testing.assert_close(a, x)


# --- the ancestral step (beyond the spec) -----------------------------------------------------------------------------

def markov_posterior_std(t: float, t_next: float) -> float:
    """The textbook posterior of a Gaussian noising chain, written independently of ``posterior_noise``: with marginals
    x_t = α_t x₁ + σ_t ε (here α = t, σ = 1 − t) and the Markov step from t' to t < t' of variance
    σ²_{t|t'} = σ_t² − (α_t / α_t')² σ_t'², the posterior q(x_t' | x_t, x₁) has variance σ²_{t|t'} σ_t'² / σ_t²."""
    alpha, sigma = (lambda u: u), (lambda u: 1 - u)
    var_step = sigma(t) ** 2 - (alpha(t) / alpha(t_next)) ** 2 * sigma(t_next) ** 2
    return math.sqrt(var_step * sigma(t_next) ** 2 / sigma(t) ** 2)


@pytest.mark.parametrize("t, t_next", [(0.02, 0.04), (0.25, 0.5), (0.5, 0.52), (0.9, 0.98)])
def test_posterior_noise_is_the_markov_chain_s_posterior(t, t_next):
    assert posterior_noise(t, t_next) == pytest.approx(markov_posterior_std(t, t_next), rel=1e-12)


def test_posterior_noise_at_the_ends_and_its_domain():
    assert posterior_noise(0.0, 0.02) == pytest.approx(0.98)  # from pure noise: nothing of x_t survives
    assert posterior_noise(0.25, 0.5) == pytest.approx(0.5 * math.sqrt(8 / 9))  # SNR 1/9 → 1
    assert posterior_noise(0.98, 1.0) == 0.0  # the last step lands on x̂₁
    for t, t_next in ((0.5, 0.5), (0.6, 0.5), (-0.1, 0.5), (0.5, 1.1)):
        with pytest.raises(ValueError):
            posterior_noise(t, t_next)


def test_at_eta_0_the_ancestral_step_is_euler_s_and_draws_nothing():
    x, v = gauss(3, 1, 4, 4, seed=20), gauss(3, 1, 4, 4, seed=21)
    gen = gauss_source(5)
    state = gen.get_state()
    torch.testing.assert_close(ancestral_step(x, 0.3, 0.32, v, 0.0, gen), x + 0.02 * v, rtol=0, atol=1e-12)
    assert torch.equal(gen.get_state(), state)
    # x̂₁ and ε̂ lie on one line through x_t: recombined at t they give x_t back
    torch.testing.assert_close(0.3 * one_step_estimate(x, 0.3, v) + 0.7 * noise_estimate(x, 0.3, v), x)


def test_the_ancestral_step_keeps_the_path_s_marginals_and_forgets_the_start():
    """One image x₁ = c, whose ideal field v(x, t) = (c − x) / (1 − t) makes x̂₁ = c exact: from x₀ ~ N(0, I), every
    state the stochastic loop reaches at t must be distributed as the path's x_t ~ N(t c, (1 − t)²), for any η. At
    η = 1 the first step from t = 0 keeps nothing of x₀ (s = 1 − t'); Euler's keeps all of it."""
    n, c = 200_000, 0.7
    x0 = gauss(n, 1, 1, 1, seed=22)
    for eta in (0.5, 1.0):
        states = {}
        out = euler(x0, 0.0, 0.1, lambda x, t: (c - x) / (1 - t), eta=eta, generator=gauss_source(1),
                    on_step=lambda k, t, x, x1: states.setdefault(round(t, 6), x.clone()))
        torch.testing.assert_close(out, torch.full_like(out, c), rtol=0, atol=1e-12)
        for t in (0.1, 0.5, 0.9):
            x = states[t]
            assert x.mean().item() == pytest.approx(t * c, abs=4 * (1 - t) / math.sqrt(n))
            assert x.std().item() == pytest.approx(1 - t, rel=0.01)
        first = torch.corrcoef(torch.stack([x0.flatten(), states[0.1].flatten()]))[0, 1].item()
        assert first == pytest.approx(math.sqrt(1 - eta ** 2), abs=0.01)  # kept √((1 − t')² − s²) / (1 − t') of ε̂ = x₀


def test_a_stochastic_run_is_seeded_and_checks_its_arguments():
    model = AffineVelocity()
    gen = lambda seed=3: gauss_source(seed)  # noqa: E731
    a = sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(), steps=10, eta=1.0)
    assert torch.equal(a, sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(), steps=10,
                                 eta=1.0))
    assert not torch.allclose(a, sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(4),
                                        steps=10, eta=1.0))
    euler_run = sample(model, model.encode_prompt("0"), scale=1.0, num_samples=5, generator=gen(), steps=10)
    assert not torch.allclose(a, euler_run)
    x = gauss(1, 1, 2, 2)
    with pytest.raises(ValueError, match="generator"):
        euler(x, 0.0, 0.5, lambda x, t: x, eta=1.0)
    with pytest.raises(ValueError, match="η"):
        euler(x, 0.0, 0.5, lambda x, t: x, eta=1.5, generator=gen())

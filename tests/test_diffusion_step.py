"""The DDPM step math and the sampling loop, checked against diffusers' ``DDPMScheduler`` on identical inputs and noise.

diffusers keeps ᾱ in float32, which loses precision where ᾱ is close to 1 (1 − ᾱ_0 ≈ 4e-5 for IF's cosine schedule has
only ~3 significant digits in float32); our tables are float64. The exact comparisons therefore give the diffusers
scheduler the same float64 ᾱ table (``exact``) — then any difference is a difference in the formulas — and a separate
test compares against the stock float32 scheduler at float32 tolerance.

One deliberate difference: a step that lands on the clean image (t' = −1) adds no noise (the spec's "z = 0 at the last
step"), while diffusers adds noise whenever t > 0 — which only differs for strided chains whose last timestep is not 0
(e.g. [299, 289, …, 9]). ``reference_step`` is diffusers' step with that noise taken out again.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from lib.guidance import classifier_free_guidance
from lib.ddpm.diffusion import (
    ddpm_step,
    estimate_x0,
    forward_noise,
    step_log_variance,
)
from lib.ddpm.sampling import cfg_predictor, denoise, guided_predictions, sample
from lib.ddpm.schedules import linear_schedule, schedule_from_diffusers, strided_timesteps

VARIANCE_TYPES = ["fixed_small", "fixed_large", "learned_range"]
IF_STRIDED = list(range(990, -1, -30))  # [990, 960, …, 30, 0]
MNIST_STRIDED = list(range(299, -1, -10))  # [299, 289, …, 9]: the last step 9 → −1 still adds noise (t > 0)


def if_scheduler(variance_type: str, clip: bool = False) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type=variance_type,
                         clip_sample=clip, thresholding=False)


def mnist_scheduler(variance_type: str) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=300, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         variance_type=variance_type, clip_sample=False, thresholding=False)


def exact(scheduler: DDPMScheduler) -> DDPMScheduler:
    """The same scheduler with its ᾱ table computed in float64 from its own betas (as ``schedule_from_diffusers``)."""
    scheduler.alphas_cumprod = torch.cumprod(1.0 - scheduler.betas.double(), dim=0)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def model_output(shape, variance_type, dtype, seed=0):
    """ε̂ (B, C, H, W) and, for learned_range, the 6-channel IF-style output [ε̂ | v] with v ∈ [−1, 1]."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(shape, generator=g, dtype=dtype)
    v = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    if variance_type == "learned_range":
        return eps, v, torch.cat([eps, v], dim=1)
    return eps, None, eps


def reference_step(ref: DDPMScheduler, out: torch.Tensor, t: int, x: torch.Tensor, generator: torch.Generator):
    """``ref.step`` with the noise of a t > 0 → −1 step removed again: (x_t', x̂0)."""
    state = generator.get_state()
    step = ref.step(out, t, x, generator=generator)
    if int(ref.previous_timestep(t)) >= 0 or int(t) == 0:
        return step.prev_sample, step.pred_original_sample
    z = torch.randn(x.shape, generator=torch.Generator().set_state(state), dtype=x.dtype)  # the z diffusers drew
    v = out[:, x.shape[1]:] if out.shape[1] == 2 * x.shape[1] else None
    var = ref._get_variance(t, predicted_variance=v)
    std = torch.exp(0.5 * var) if ref.variance_type == "learned_range" else var**0.5
    return step.prev_sample - std * z, step.pred_original_sample


def pairs(timesteps):
    """(t, t') for every step along ``timesteps``, then the final t → −1 step diffusers takes from the last entry."""
    return list(zip(timesteps, timesteps[1:] + [-1]))


CASES = [
    # (scheduler factory, custom timesteps or None for the plain t → t − 1 chain, (t, t') pairs to check)
    pytest.param(if_scheduler, None, [(999, 998), (500, 499), (1, 0), (0, -1)], id="IF-plain"),
    pytest.param(if_scheduler, IF_STRIDED, pairs(IF_STRIDED), id="IF-strided-30"),
    pytest.param(mnist_scheduler, None, [(299, 298), (150, 149), (1, 0), (0, -1)], id="T300-plain"),
    pytest.param(mnist_scheduler, MNIST_STRIDED, pairs(MNIST_STRIDED), id="T300-strided-from-299"),
    pytest.param(mnist_scheduler, strided_timesteps(300, 25), pairs(strided_timesteps(300, 25)), id="T300-strided-to-0"),
]


@pytest.mark.parametrize("variance_type", VARIANCE_TYPES)
@pytest.mark.parametrize("make, custom, steps", CASES)
def test_ddpm_step_matches_diffusers(make, custom, steps, variance_type):
    ref = exact(make(variance_type))
    if custom is not None:
        ref.set_timesteps(timesteps=custom)
    schedule = schedule_from_diffusers(ref)
    shape = (2, 3, 8, 8)
    for k, (t, t_prev) in enumerate(steps):
        assert int(ref.previous_timestep(t)) == t_prev  # we check the step diffusers actually takes
        eps, v, out = model_output(shape, variance_type, torch.float64, seed=k)
        x_t = torch.randn(shape, generator=torch.Generator().manual_seed(100 + k), dtype=torch.float64)
        # diffusers draws z = randn_tensor(shape, generator) inside step(); the same seed gives us the same z
        expected_prev, expected_x0 = reference_step(ref, out, t, x_t, torch.Generator().manual_seed(7 + k))
        z = torch.randn(shape, generator=torch.Generator().manual_seed(7 + k), dtype=torch.float64)
        x_prev, x0 = ddpm_step(x_t, eps, t, t_prev, schedule, variance_type=variance_type, predicted_variance=v,
                               noise=z)
        torch.testing.assert_close(x0, expected_x0, rtol=1e-9, atol=1e-5)
        torch.testing.assert_close(x_prev, expected_prev, rtol=1e-9, atol=1e-5)
        if t_prev >= 0:  # the noise really is part of the step (β̃ = 0 when stepping to the clean image t' = −1)
            mean, _ = ddpm_step(x_t, eps, t, t_prev, schedule, variance_type=variance_type, predicted_variance=v)
            assert (x_prev - mean).abs().max() > 1e-4


@pytest.mark.parametrize("variance_type", VARIANCE_TYPES)
def test_ddpm_step_matches_stock_float32_diffusers(variance_type):
    """Against the unmodified scheduler: the same result to float32 precision, in float32, along IF's strided list."""
    ref = if_scheduler(variance_type)
    ref.set_timesteps(timesteps=IF_STRIDED)
    schedule = schedule_from_diffusers(ref)
    shape = (2, 3, 8, 8)
    for k, (t, t_prev) in enumerate(pairs(IF_STRIDED)):
        eps, v, out = model_output(shape, variance_type, torch.float32, seed=k)
        x_t = torch.randn(shape, generator=torch.Generator().manual_seed(100 + k))
        expected = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(k))
        z = torch.randn(shape, generator=torch.Generator().manual_seed(k))
        x_prev, x0 = ddpm_step(x_t, eps, t, t_prev, schedule, variance_type=variance_type, predicted_variance=v,
                               noise=z)
        assert x_prev.dtype == torch.float32
        torch.testing.assert_close(x0, expected.pred_original_sample, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(x_prev, expected.prev_sample, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("variance_type", VARIANCE_TYPES)
@pytest.mark.parametrize("make, custom, steps", CASES)
def test_step_log_variance_matches_get_variance(make, custom, steps, variance_type):
    ref = exact(make(variance_type))
    if custom is not None:
        ref.set_timesteps(timesteps=custom)
    schedule = schedule_from_diffusers(ref)
    v = torch.linspace(-1, 1, 5, dtype=torch.float64)
    for t, t_prev in steps:
        ours = step_log_variance(t, t_prev, schedule, variance_type, v if variance_type == "learned_range" else None)
        theirs = ref._get_variance(t, predicted_variance=v)
        if variance_type == "learned_range":  # diffusers returns log σ² itself here …
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
        else:  # … and σ² for the fixed types
            torch.testing.assert_close(torch.exp(ours), theirs, rtol=1e-10, atol=1e-30)


def test_step_log_variance_endpoints_and_errors():
    s = linear_schedule()
    abar = s.alphas_cumprod
    # learned_range interpolates in log space: v = 1 is β (fixed_large), v = −1 is β̃ (fixed_small)
    ends = step_log_variance(100, 90, s, "learned_range", torch.tensor([1.0, -1.0], dtype=torch.float64))
    beta = 1 - abar[100] / abar[90]
    beta_tilde = (1 - abar[90]) / (1 - abar[100]) * beta
    torch.testing.assert_close(ends, torch.log(torch.stack([beta, beta_tilde])))
    torch.testing.assert_close(step_log_variance(100, 90, s, "fixed_large"), torch.log(beta))
    torch.testing.assert_close(step_log_variance(100, 90, s, "fixed_small"), torch.log(beta_tilde))
    with pytest.raises(ValueError):
        step_log_variance(100, 90, s, "learned_range")
    with pytest.raises(ValueError):
        step_log_variance(100, 90, s, "fixed_large_log")


def test_no_noise_on_the_step_to_the_clean_image():
    """Spec B2: z = 0 at the last step, also when a strided chain reaches −1 from t > 0."""
    s = linear_schedule()
    x, eps = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    for t in (0, 9, 150):
        for vt in VARIANCE_TYPES:
            v = torch.zeros_like(x) if vt == "learned_range" else None
            noisy, x0 = ddpm_step(x, eps, t, -1, s, variance_type=vt, predicted_variance=v, noise=torch.ones_like(x))
            torch.testing.assert_close(noisy, x0)  # ᾱ_{−1} = 1: the step lands exactly on x̂0
    stepped, _ = ddpm_step(x, eps, 9, 8, s, variance_type="fixed_large", noise=torch.ones_like(x))
    mean, _ = ddpm_step(x, eps, 9, 8, s, variance_type="fixed_large")
    torch.testing.assert_close(stepped - mean, torch.full_like(x, (1 - s.abar(9) / s.abar(8)) ** 0.5))


def test_ddpm_step_rejects_forward_steps_and_skips_noise_at_t0():
    s = linear_schedule()
    x = torch.randn(1, 1, 4, 4)
    for t, t_prev in [(10, 10), (10, 20)]:
        with pytest.raises(ValueError):
            ddpm_step(x, x, t, t_prev, s)
    z = torch.full_like(x, 100.0)
    with_noise, _ = ddpm_step(x, x, 0, -1, s, variance_type="fixed_large", noise=z)
    without, x0 = ddpm_step(x, x, 0, -1, s, variance_type="fixed_large")
    assert torch.equal(with_noise, without)
    torch.testing.assert_close(without, x0)  # ᾱ_{−1} = 1: the last step lands on x̂0 itself


def test_clip_x0_matches_clip_sample():
    ref = exact(if_scheduler("fixed_small", clip=True))
    schedule = schedule_from_diffusers(ref)
    eps, _, _ = model_output((2, 3, 8, 8), "fixed_small", torch.float64)
    x_t = 3 * torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = ref.step(eps, 700, x_t, generator=torch.Generator().manual_seed(1))
    z = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_prev, x0 = ddpm_step(x_t, eps, 700, 699, schedule, noise=z, clip_x0=1.0)
    assert x0.abs().max() == 1.0 and estimate_x0(x_t, eps, 700, schedule).abs().max() > 1.5  # clipping happened
    torch.testing.assert_close(x0, expected.pred_original_sample, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(x_prev, expected.prev_sample, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("schedule", [linear_schedule(), schedule_from_diffusers(if_scheduler("fixed_small"))],
                         ids=["linear-300", "cosine-1000"])
def test_estimate_x0_inverts_forward_noise(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((3, 1, 6, 6), generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn((3, 1, 6, 6), generator=g, dtype=torch.float64)
    for t in [-1, 0, 1, schedule.num_timesteps // 2, schedule.num_timesteps - 1]:
        x_t = forward_noise(x0, t, schedule, eps)
        abar = schedule.abar(t)
        torch.testing.assert_close(x_t, abar**0.5 * x0 + (1 - abar) ** 0.5 * eps)
        torch.testing.assert_close(estimate_x0(x_t, eps, t, schedule), x0, rtol=0, atol=1e-8)
    assert torch.equal(forward_noise(x0, -1, schedule, eps), x0)


def test_forward_noise_matches_diffusers_add_noise():
    ref = exact(mnist_scheduler("fixed_large"))
    schedule = linear_schedule()
    x0 = torch.rand(2, 1, 28, 28, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    for t in [0, 37, 299]:
        expected = ref.add_noise(x0, eps, torch.tensor([t, t]))
        torch.testing.assert_close(forward_noise(x0, t, schedule, eps), expected, rtol=1e-6, atol=1e-7)


def test_classifier_free_guidance_scales():
    g = torch.Generator().manual_seed(0)
    eps_c, eps_u = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    assert torch.equal(classifier_free_guidance(eps_c, eps_u, 0.0), eps_u)
    torch.testing.assert_close(classifier_free_guidance(eps_c, eps_u, 1.0), eps_c, rtol=0, atol=1e-6)
    torch.testing.assert_close(classifier_free_guidance(eps_c, eps_u, 7.0), 7 * eps_c - 6 * eps_u)
    torch.testing.assert_close(classifier_free_guidance(eps_c, eps_u, 0.5), (eps_c + eps_u) / 2)


# ---------------------------------------------------------------------------------------------------------------
# the loop


def fake_eps(x: torch.Tensor, t: int):
    """A deterministic "denoiser": ε̂ and v are fixed smooth functions of (x, t)."""
    eps = 0.8 * torch.tanh(x) + 0.05 * torch.cos(torch.tensor(t / 37.0))
    v = torch.sin(x + t / 100.0)
    return eps, v


def diffusers_loop(ref: DDPMScheduler, x: torch.Tensor, timesteps, generator, learned: bool, on_step=None):
    for i, t in enumerate(timesteps):
        eps, v = fake_eps(x, int(t))
        x, x0 = reference_step(ref, torch.cat([eps, v], 1) if learned else eps, t, x, generator)
        if on_step:
            on_step(i, x0)
    return x


@pytest.mark.parametrize(
    "variance_type, make, custom, i_start",
    [
        ("learned_range", if_scheduler, IF_STRIDED, 0),
        ("learned_range", if_scheduler, IF_STRIDED, 10),  # spec 1.4's i_start = 10 ⇒ t = 690
        ("fixed_small", if_scheduler, IF_STRIDED, 0),
        ("fixed_large", mnist_scheduler, None, 0),  # the spec's full 300-step chain
        ("fixed_large", mnist_scheduler, MNIST_STRIDED, 0),
        ("fixed_small", mnist_scheduler, MNIST_STRIDED, 3),
    ],
)
def test_denoise_equals_diffusers_step_loop(variance_type, make, custom, i_start):
    ref = exact(make(variance_type))
    if custom is not None:
        ref.set_timesteps(timesteps=custom)
    schedule = schedule_from_diffusers(ref)
    ts = [int(t) for t in ref.timesteps]
    x_start = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(42))

    trajectory_ref = []
    expected = diffusers_loop(ref, x_start, ref.timesteps[i_start:], torch.Generator().manual_seed(5),
                              variance_type == "learned_range",
                              on_step=lambda i, x0: trajectory_ref.append(x0))
    seen = []
    # our loop goes from timesteps[i] to timesteps[i + 1]; diffusers' last step goes from ts[-1] to −1
    got = denoise(x_start, ts + [-1], lambda x, t: fake_eps(x, t), schedule, torch.Generator().manual_seed(5),
                  variance_type=variance_type, i_start=i_start, on_step=lambda i, t, x, x0: seen.append((i, t, x0)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    assert [i for i, _, _ in seen] == list(range(i_start, len(ts)))
    assert [t for _, t, _ in seen] == ts[i_start + 1:] + [-1]
    for (_, _, x0), x0_ref in zip(seen, trajectory_ref):
        torch.testing.assert_close(x0, x0_ref, rtol=1e-5, atol=2e-5)
    # and the noise mattered: another seed gives another image
    other = denoise(x_start, ts + [-1], lambda x, t: fake_eps(x, t), schedule, torch.Generator().manual_seed(6),
                    variance_type=variance_type, i_start=i_start)
    assert (other - got).abs().max() > 1e-3


def test_denoise_rejects_bad_i_start():
    s = linear_schedule()
    x = torch.zeros(1, 1, 4, 4)
    for i_start in (-1, 3, 10):
        with pytest.raises(ValueError):
            denoise(x, [20, 10, 0], lambda x, t: fake_eps(x, t), s, torch.Generator(), i_start=i_start)


def test_denoise_after_step_sees_every_new_timestep():
    s = linear_schedule()
    calls = []

    def after(x, t):
        calls.append(t)
        return torch.zeros_like(x)  # what an inpainting update returns replaces the image

    out = denoise(torch.randn(1, 1, 4, 4), [50, 30, 10, 0], lambda x, t: fake_eps(x, t), s,
                  torch.Generator().manual_seed(0), after_step=after)
    assert calls == [30, 10, 0]
    assert torch.equal(out, torch.zeros(1, 1, 4, 4))


# ---------------------------------------------------------------------------------------------------------------
# classifier-free guidance in one batch


class FakeNoiseModel:
    """A deterministic denoiser whose ε̂ and v depend on (x, t, cond) row by row, and which records its calls."""

    name = "fake"
    image_shape = (3, 8, 8)
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, variance_type="learned_range", schedule=None):
        self.variance_type = variance_type
        self.schedule = schedule or linear_schedule()
        self.calls: list[tuple[int, int]] = []

    def predict(self, x_t, t, cond):
        assert cond.shape[0] == x_t.shape[0]
        self.calls.append((x_t.shape[0], t))
        w = cond.sum(dim=1).view(-1, 1, 1, 1)
        eps = torch.tanh(x_t) * (1 + w) + 1e-4 * t
        v = torch.tanh(x_t * w) if self.variance_type == "learned_range" else None
        return eps, v

    def encode_prompt(self, prompt):
        return torch.tensor([[float(len(prompt)), 1.0]])

    def null_condition(self):
        return torch.zeros(1, 2)

    def timesteps(self, stride):
        return list(range(self.schedule.num_timesteps - 1, -1, -stride)) + [-1]


def separate_cfg(den, x, cond, uncond, t, scale):
    """Spec 1.6 written out with two separate calls: ε_u + γ (ε_c − ε_u), variance of the conditional pass."""
    b = x.shape[0]
    eps_c, v_c = den.predict(x, t, cond.expand(b, -1))
    eps_u, _ = den.predict(x, t, uncond.expand(b, -1))
    return eps_u + scale * (eps_c - eps_u), v_c


@pytest.mark.parametrize("variance_type", ["learned_range", "fixed_large"])
@pytest.mark.parametrize("scale", [0.0, 1.0, 0.5, 7.0])
def test_guided_predictions_batched_equals_separate_calls(variance_type, scale):
    den = FakeNoiseModel(variance_type)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 3, 8, 8, generator=g) for _ in range(3)]
    conds = [den.encode_prompt("a"), den.encode_prompt("a cat"), torch.tensor([[0.5, -1.0], [2.0, 0.0]])]  # last: per row
    uncond = den.null_condition()
    got = guided_predictions(den, xs, conds, uncond, 123, scale)

    # ONE batched model call: all inputs × {cond, uncond}, or only one half when γ ∈ {0, 1} allows it
    needs_both = scale not in (0.0, 1.0) or (scale == 0.0 and variance_type == "learned_range")
    assert den.calls == [(6 * (2 if needs_both else 1), 123)]

    for (eps, v), x, c in zip(got, xs, conds):
        eps_ref, v_ref = separate_cfg(den, x, c, uncond, 123, scale)
        torch.testing.assert_close(eps, eps_ref, rtol=1e-6, atol=1e-6)
        if variance_type == "learned_range":
            torch.testing.assert_close(v, v_ref, rtol=0, atol=0)  # always the conditional pass's variance
        else:
            assert v is None


@pytest.mark.parametrize("variance_type", ["learned_range", "fixed_large"])
@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_guidance_shortcut_equals_full_formula(variance_type, scale):
    """γ ∈ {0, 1} may skip half the batch; the result must be what the batched two-pass formula gives at that γ."""
    den = FakeNoiseModel(variance_type)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    cond, uncond = den.encode_prompt("a dog"), den.null_condition()
    eps, v = guided_predictions(den, [x], [cond], uncond, 50, scale)[0]
    both, v_both = den.predict(torch.cat([x, x]), 50, torch.cat([cond.expand(4, -1), uncond.expand(4, -1)]))
    full = classifier_free_guidance(both[:4], both[4:], scale)
    torch.testing.assert_close(eps, full, rtol=0, atol=1e-6)
    if variance_type == "learned_range":
        torch.testing.assert_close(v, v_both[:4], rtol=0, atol=0)
    else:
        assert v is None and v_both is None


def test_sample_with_cfg_equals_diffusers_loop():
    """``sample`` end to end: x_T from the generator, CFG predictions, the denoiser's timesteps, diffusers' update."""
    den = FakeNoiseModel("learned_range", schedule_from_diffusers(if_scheduler("learned_range")))
    den.timesteps = lambda stride: strided_timesteps(1000, stride) + [-1]
    cond, uncond = den.encode_prompt("a rocket"), den.null_condition()
    got = sample(den, cond, scale=7.0, stride=100, num_samples=2, generator=torch.Generator().manual_seed(3))

    ref = exact(if_scheduler("learned_range"))
    ref.set_timesteps(timesteps=strided_timesteps(1000, 100))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((2, 3, 8, 8), generator=gen)
    predict = cfg_predictor(den, cond, uncond, 7.0)
    for t in ref.timesteps:
        c_eps, c_v = separate_cfg(den, x, cond, uncond, int(t), 7.0)
        eps, v = predict(x, int(t))
        torch.testing.assert_close(eps, c_eps, rtol=1e-6, atol=1e-6)
        x = ref.step(torch.cat([eps, v], 1), t, x, generator=gen).prev_sample
    torch.testing.assert_close(got, x, rtol=1e-5, atol=2e-5)

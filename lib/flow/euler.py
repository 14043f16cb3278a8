"""One velocity interface and one Euler loop, for every flow model (the MNIST flow models of part B, PixNerd of part A).

A ``VelocityModel`` predicts dx/dt at a continuous time t ∈ [0, 1] (0 = noise, 1 = image). Sampling integrates
dx/dt = v(x, t) with Euler steps x_{t+h} = x_t + h · v(x_t, t) from any t_start to exactly 1 (``euler``); with a noise
level η > 0 the same loop takes the path's stochastic (ancestral) step instead (``ancestral_step``).

What a technique changes is how v is predicted — plain, with classifier-free guidance, and later an anagram's two views
or a hybrid's two bands — so each is a ``Predict`` closure over the same loop, as ``lib.ddpm.sampling``'s ``Predictor``
is for the DDPM loop; what it imposes after a step (inpainting's known pixels at the new t) is an ``after_step`` hook.

Classifier-free guidance keeps its one home, ``lib.guidance.classifier_free_guidance``: v = v_u + γ (v_c − v_u).
Part B's γ = 5 is that form as is. Part A's course form v_c + w (v_c − v_u) is the same with γ = w + 1
(``scale_from_course_w``: the course's w = 7 is γ = 8).
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import torch

from lib.flow.path import noise_estimate, one_step_estimate
from lib.ddpm.sampling import randn
from lib.guidance import classifier_free_guidance, guidance_batch

# predict(x_t, t) -> v̂ (dx/dt at t): a closure over the model, the prompts and the guidance
Predict = Callable[[torch.Tensor, float], torch.Tensor]
# after_step(x, t') -> x: may rewrite the state reached at t' (inpainting re-imposes the known pixels there)
AfterStep = Callable[[torch.Tensor, float], torch.Tensor]
# on_step(k, t', x_t', x̂₁) after step k (0-based) from t to t', with x̂₁ = x_t + (1 − t) v̂ of that step's v̂
StepCallback = Callable[[int, float, torch.Tensor, torch.Tensor], None]


class VelocityModel(Protocol):
    """What the Euler loop and the guidance need from a flow model."""

    name: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    value_range: tuple[float, float]  # the images' pixel range: (−1, 1) for PixNerd, (0, 1) for the MNIST flow models
    device: torch.device
    dtype: torch.dtype

    def velocity(self, x_t: torch.Tensor, t: float | torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """dx/dt (B, C, H, W) at time t ∈ [0, 1] — one float for the batch or a (B,) tensor — under the condition
        ``cond`` (one row per image)."""

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """The condition for one prompt, batch dimension 1."""

    def null_condition(self) -> torch.Tensor:
        """The condition meaning "no prompt" (classifier-free guidance's unconditional branch), batch dimension 1."""


def euler_times(t_start: float, h: float | None = None, steps: int | None = None) -> list[float]:
    """The times t_0 = t_start < t_1 < … < t_n = 1.0 of an Euler run, by step size ``h`` or number of ``steps``.

    With h: n = ⌈(1 − t_start) / h⌉ steps (less 1e-9, so that float noise in the division does not add a step) at
    t_k = t_start + k · h (computed, not accumulated), the last one shortened to end exactly at 1: h = 0.02 gives 50
    steps from 0, 25 from 0.5 and 4 from 0.93 (the last of 0.01). With steps: h = (1 − t_start) / steps — from 0 the
    part-B notebook's num_ts steps of h = 1 / num_ts."""
    if not 0.0 <= t_start < 1.0:
        raise ValueError(f"t_start = {t_start} must lie in [0, 1)")
    if (h is None) == (steps is None):
        raise ValueError("give the step size h or the number of steps, not both")
    if steps is not None:
        if steps < 1:
            raise ValueError("at least one step")
        h = (1.0 - t_start) / steps
    elif not h > 0:
        raise ValueError(f"the step size h = {h} must be positive")
    else:
        steps = math.ceil((1.0 - t_start) / h - 1e-9)
    return [min(t_start + k * h, 1.0) for k in range(steps)] + [1.0]


def euler_step_count(t_start: float, h: float) -> int:
    """How many steps ``euler_times(t_start, h)`` takes to reach 1: ⌈(1 − t_start) / h⌉ (what a progress bar counts)."""
    return len(euler_times(t_start, h)) - 1


def posterior_noise(t: float, t_next: float) -> float:
    """s = (1 − t') √(1 − SNR_t / SNR_t'), SNR_t = (t / (1 − t))², for 0 ≤ t < t' ≤ 1: the standard deviation of
    q(x_t' | x_t, x₁), the posterior of the Markov (DDPM) noising process whose marginals are the straight path's
    x_t = (1 − t) ε + t x₁. It is 1 − t' from t = 0 (pure noise tells nothing of the next state) and 0 at t' = 1."""
    if not 0.0 <= t < t_next <= 1.0:
        raise ValueError(f"need 0 ≤ t < t' ≤ 1, not t = {t}, t' = {t_next}")
    if t_next == 1.0:
        return 0.0
    snr_ratio = (t * (1 - t_next) / (t_next * (1 - t))) ** 2
    return (1 - t_next) * math.sqrt(1 - snr_ratio)


def ancestral_step(x: torch.Tensor, t: float, t_next: float, v: torch.Tensor, eta: float,
                   generator: torch.Generator) -> torch.Tensor:
    """x_t' = t' x̂₁ + √((1 − t')² − s²) ε̂ + s z with s = η · ``posterior_noise(t, t')`` and z ~ N(0, I) fresh from
    ``generator`` (x̂₁ and ε̂ as ``lib.flow.path`` estimates them from v): the DDIM family on the straight path.

    η = 0 recombines x̂₁ and ε̂ at t', which is Euler's step x_t + (t' − t) v exactly; η = 1 draws x_t' from the
    posterior q(x_t' | x_t, x̂₁) — the DDPM's ancestral step, which keeps every marginal of the path and lets later
    steps correct what earlier ones got wrong."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"the noise level η = {eta} must lie in [0, 1]")
    s = eta * posterior_noise(t, t_next)
    kept = math.sqrt(max((1 - t_next) ** 2 - s * s, 0.0))
    fresh = randn(x.shape, generator, like=x) if s > 0 else 0.0
    return t_next * one_step_estimate(x, t, v) + kept * noise_estimate(x, t, v) + s * fresh


def euler(
    x_start: torch.Tensor,
    t_start: float,
    h: float | None,
    predict: Predict,
    *,
    steps: int | None = None,
    after_step: AfterStep | None = None,
    on_step: StepCallback | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = predict(x, t) from ``x_start`` at ``t_start`` to t = 1 by Euler steps x ← x + (t' − t) · v̂
    along ``euler_times(t_start, h, steps)`` (pass h = None to give ``steps``); return the state at t = 1. With a noise
    level ``eta`` > 0 each step is ``ancestral_step`` instead, its fresh noise drawn from ``generator``: still one
    prediction a step, the same times, the same last step to x̂₁."""
    if eta and generator is None:
        raise ValueError("a stochastic run (η > 0) needs a generator for its fresh noise")
    times = euler_times(t_start, h, steps)
    x = x_start
    with torch.no_grad():
        for k, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
            v = predict(x, t)
            x_next = x + (t_next - t) * v if not eta else ancestral_step(x, t, t_next, v, eta, generator)
            if after_step is not None:
                x_next = after_step(x_next, t_next)
            if on_step is not None:
                on_step(k, t_next, x_next, one_step_estimate(x, t, v))
            x = x_next
    return x


def guided_velocities(
    model: VelocityModel,
    inputs: Sequence[torch.Tensor],
    conds: Sequence[torch.Tensor],
    uncond: torch.Tensor,
    t: float,
    scale: float,
) -> list[torch.Tensor]:
    """Classifier-free-guided velocities for several (input, condition) pairs in **one** batched model call.

    The batch is [x_1 … x_n | x_1 … x_n] with conditions [c_1 … c_n | ∅ … ∅], and each result is
    v_i = v_u,i + γ (v_c,i − v_u,i). γ = 1 is the conditional call alone and γ = 0 the unconditional one (half the
    work). A condition has one row (shared by the batch) or one row per image."""
    x, cond_rows, uncond_rows = guidance_batch(inputs, conds, uncond)
    if scale in (0.0, 1.0):
        guided = model.velocity(x, t, cond_rows if scale == 1.0 else uncond_rows)
    else:
        v = model.velocity(torch.cat([x, x]), t, torch.cat([cond_rows, uncond_rows]))
        guided = classifier_free_guidance(v[: len(x)], v[len(x):], scale)
    return list(guided.split(inputs[0].shape[0]))


def cfg_predictor(model: VelocityModel, cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> Predict:
    """The plain guided predictor: one condition, one view."""

    def predict(x: torch.Tensor, t: float) -> torch.Tensor:
        return guided_velocities(model, [x], [cond], uncond, t, scale)[0]

    return predict


def scale_from_course_w(w: float) -> float:
    """Part A's course guidance v_c + w (v_c − v_u) as this module's v_u + γ (v_c − v_u): γ = w + 1."""
    return w + 1.0


def sample(
    model: VelocityModel,
    cond: torch.Tensor,
    *,
    scale: float,
    num_samples: int,
    generator: torch.Generator,
    h: float | None = None,
    steps: int | None = None,
    on_step: StepCallback | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """Images from pure noise: x_0 ~ N(0, I) from ``generator``, integrated with guidance ``scale`` from t = 0 to 1
    (step size ``h`` or ``steps`` steps; noise level ``eta``, its fresh noise from the same ``generator``)."""
    x = randn((num_samples, *model.image_shape), generator, device=model.device, dtype=model.dtype)
    predict = cfg_predictor(model, cond, model.null_condition(), scale)
    return euler(x, 0.0, h, predict, steps=steps, on_step=on_step, eta=eta, generator=generator)

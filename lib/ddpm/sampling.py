"""Sampling loops, generic over a *denoiser*: any model that predicts ε̂ (and optionally a variance) for (x_t, t, cond).

Both backends — the built-in MNIST DDPM and DeepFloyd IF — implement ``NoiseModel``; every page of part A and part B
runs the same ``denoise`` loop on either. Randomness comes only from the ``torch.Generator`` a caller passes, so the same
seed gives the same image whatever else the process is doing.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import torch

from lib.ddpm.diffusion import VarianceType, ddpm_step, estimate_x0, forward_noise
from lib.ddpm.schedules import Schedule
from lib.guidance import classifier_free_guidance, guidance_batch

# predict(x_t, t) -> (ε̂, predicted variance v or None); a closure over the denoiser, prompts and guidance scale.
Predictor = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor | None]]
# on_step(i, t, x_t', x̂0) after each step; for progress bars and trajectories.
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


class PromptError(ValueError):
    """A prompt a model cannot turn into a condition (shown to the user as is): what ``encode_prompt`` raises, for a
    ``NoiseModel`` and for the flow edition's ``lib.flow.VelocityModel`` alike."""


class NoiseModel(Protocol):
    """What the sampling loops need from a model."""

    name: str
    schedule: Schedule
    image_shape: tuple[int, int, int]  # (C, H, W); pixel values live in [-1, 1]
    variance_type: VarianceType
    device: torch.device
    dtype: torch.dtype

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ε̂ (B, C, H, W) and the predicted variance v (same shape, or None) for a batch of (x_t, cond) at step t —
        one int for the whole batch, or a (B,) tensor of per-row steps (the model server merges sessions that are at
        different steps into one call)."""

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """The condition for one prompt, batch dimension 1; a ``PromptError`` if the model cannot take it."""

    def null_condition(self) -> torch.Tensor:
        """The condition meaning "no prompt" (for the unconditional half of classifier-free guidance)."""

    def timesteps(self, stride: int) -> list[int]:
        """The strided list this denoiser samples along, from (almost) pure noise down to the clean end."""


def randn(shape: Sequence[int], generator: torch.Generator, like: torch.Tensor | None = None, *, device=None, dtype=None):
    """Gaussian noise from ``generator`` (drawn on the generator's device, then moved)."""
    device = like.device if like is not None else device
    dtype = like.dtype if like is not None else dtype
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32).to(device, dtype)


def guided_predictions(
    model: NoiseModel,
    inputs: Sequence[torch.Tensor],
    conds: Sequence[torch.Tensor],
    uncond: torch.Tensor,
    t: int,
    scale: float,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Classifier-free-guided (ε, v) for several (input, prompt) pairs in **one** batched model call.

    The batch is [x_1 … x_n | x_1 … x_n] with conditions [c_1 … c_n | ∅ … ∅]; each result is
    ε_i = ε_u,i + γ (ε_c,i − ε_u,i) with the conditional pass's variance (spec 1.6). A condition may have one row
    (shared by the batch) or one row per image.
    """
    x, cond_rows, uncond_rows = guidance_batch(inputs, conds, uncond)
    # γ = 1 is the conditional pass alone and γ = 0 the unconditional one (half the work), except that a learned
    # variance always comes from the conditional pass, so γ = 0 then still needs both.
    if scale == 1.0 or (scale == 0.0 and model.variance_type != "learned_range"):
        guided, var = model.predict(x, t, cond_rows if scale == 1.0 else uncond_rows)
    else:
        eps, var = model.predict(torch.cat([x, x]), t, torch.cat([cond_rows, uncond_rows]))
        guided = classifier_free_guidance(eps[: len(x)], eps[len(x):], scale)
    b = inputs[0].shape[0]
    return [(eps, None if var is None else var[i * b:(i + 1) * b]) for i, eps in enumerate(guided.split(b))]


def cfg_predictor(model: NoiseModel, cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> Predictor:
    """The plain CFG predictor: one prompt, one view."""

    def predict(x: torch.Tensor, t: int):
        return guided_predictions(model, [x], [cond], uncond, t, scale)[0]

    return predict


def denoise(
    x: torch.Tensor,
    timesteps: Sequence[int],
    predict: Predictor,
    schedule: Schedule,
    generator: torch.Generator,
    *,
    variance_type: VarianceType = "fixed_small",
    i_start: int = 0,
    after_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    on_step: StepCallback | None = None,
    clip_x0: float | None = None,
) -> torch.Tensor:
    """The iterative denoising loop of spec 1.4: for i = i_start … len−2 step from timesteps[i] to timesteps[i+1].

    ``x`` must already be at noise level ``timesteps[i_start]``. ``after_step(x, t')`` may rewrite the image after each
    step (inpainting's RePaint update). Returns the image at ``timesteps[-1]``.
    """
    if not 0 <= i_start < len(timesteps) - 1:
        raise ValueError(f"i_start = {i_start} must lie in 0 … {len(timesteps) - 2} for {len(timesteps)} timesteps")
    with torch.no_grad():
        for i in range(i_start, len(timesteps) - 1):
            t, t_prev = int(timesteps[i]), int(timesteps[i + 1])
            eps, var = predict(x, t)
            noise = randn(x.shape, generator, like=x)
            x, x0 = ddpm_step(
                x, eps, t, t_prev, schedule,
                variance_type=variance_type, predicted_variance=var, noise=noise, clip_x0=clip_x0,
            )
            if after_step is not None:
                x = after_step(x, t_prev)
            if on_step is not None:
                on_step(i, t_prev, x, x0)
    return x


def one_step_denoise(model: NoiseModel, x_t: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
    """Spec 1.3: x̂0 from a single ε̂ at timestep t (no guidance, as in the course)."""
    with torch.no_grad():
        eps, _ = model.predict(x_t, t, cond.expand(x_t.shape[0], *cond.shape[1:]))
    return estimate_x0(x_t, eps, t, model.schedule)


def sample(
    model: NoiseModel,
    cond: torch.Tensor,
    *,
    scale: float,
    stride: int,
    num_samples: int,
    generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Spec 1.5/1.6 and B2: pure noise x_T ~ N(0, I) denoised with CFG along the denoiser's strided timesteps."""
    ts = model.timesteps(stride)
    x = randn((num_samples, *model.image_shape), generator, device=model.device, dtype=model.dtype)
    predict = cfg_predictor(model, cond, model.null_condition(), scale)
    return denoise(x, ts, predict, model.schedule, generator, variance_type=model.variance_type, on_step=on_step)


def noise_to(x0: torch.Tensor, t: int, schedule: Schedule, generator: torch.Generator) -> torch.Tensor:
    """Forward-noise ``x0`` to timestep t with noise from ``generator``."""
    return forward_noise(x0, t, schedule, randn(x0.shape, generator, like=x0))


def denoise_on(model: NoiseModel, x, timesteps, predict: Predictor, generator: torch.Generator, i_start: int = 0,
               after_step=None, on_step: StepCallback | None = None) -> torch.Tensor:
    """``denoise`` with the denoiser's own schedule and variance type: the one loop every technique runs."""
    return denoise(x, timesteps, predict, model.schedule, generator, variance_type=model.variance_type,
                   i_start=i_start, after_step=after_step, on_step=on_step)


def sample_with(
    model: NoiseModel, predict: Predictor, *, num_samples: int, stride: int, generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Run ``predict`` (plain CFG, an anagram, a hybrid, …) from pure noise along the denoiser's strided timesteps."""
    x = randn((num_samples, *model.image_shape), generator, device=model.device, dtype=model.dtype)
    return denoise_on(model, x, model.timesteps(stride), predict, generator, on_step=on_step)

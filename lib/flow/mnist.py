"""The MNIST flow models of part B (flow edition §3) as ``VelocityModel``s, and their sample grids over the Euler loop.

Pixels are in [0, 1], as the flow edition's part B states ("MNIST pixels are in [0,1] and noise is N(0,I)"): the models
learn the straight path from ε ~ N(0, I) at t = 0 to the digit x₁ ∈ [0, 1] at t = 1 (``lib.train.training``), so what they
draw is in [0, 1] (``MnistFlow.value_range``). A prompt is a digit, as for the DDPMs (``lib.backends.mnist_model``); the null
prompt is the all-zero class vector the class model saw with probability p_uncond.

Samplers (the notebook's): the time model 50 Euler steps from t = 0, the class model 300 with guidance γ = 5 in
v_u + γ (v_c − v_u) (§3 2.6). The per-epoch grids take steps ``sample_stride`` times as long (the last one shortened).
Beyond the spec, a grid may take the path's stochastic step at a noise level η instead
(``lib.flow.euler.ancestral_step``; η = 0 is Euler's step): the better time-only recipe samples at η = 1
(``lib.train.model_store.sampler_eta``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lib.flow.euler import StepCallback, euler_step_count, sample
from lib.media.images import to_uint8
from lib.backends.mnist_model import DigitConditions
from lib.train.precision import for_inference, infer
from lib.train.training import FLOW_SAMPLER_STEPS, TrainConfig

GUIDANCE_SCALE = 5.0  # §3 2.6: the class model's γ
GRID_PER_CLASS = 4  # the class model's grid: 4 samples of each digit
GRID_SAMPLES = 40  # the time model's grid


class MnistFlow(DigitConditions):
    """A trained ``flow_time`` or ``flow_class`` UNet as a ``VelocityModel``."""

    image_shape = (1, 28, 28)
    value_range = (0.0, 1.0)
    dtype = torch.float32

    def __init__(self, model: torch.nn.Module, config: TrainConfig, device: torch.device | str | None = None):
        """``device`` defaults to where the model already is."""
        if config.model not in FLOW_SAMPLER_STEPS:
            raise ValueError(f"{config.model!r} is not a flow model")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = for_inference(model, self.device)
        self.config = config
        self.conditional = config.model == "flow_class"
        self.name = f"MNIST {'class' if self.conditional else 'time'}-conditioned flow model (D = {config.hidden})"

    def velocity(self, x_t: torch.Tensor, t: float | torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """u_θ(x_t, t[, c]); the time model ignores ``cond``."""
        t = torch.as_tensor(t, dtype=torch.float32).to(x_t.device).expand(x_t.shape[0])
        if self.conditional:
            return infer(self.model, x_t, t, cond.to(x_t))
        return infer(self.model, x_t, t)


def step_size(model_kind: str, stride: int = 1) -> float:
    """h = stride / num_ts: stride 1 is the notebook's sampler (50 steps, or 300 for the class model)."""
    return stride / FLOW_SAMPLER_STEPS[model_kind]


def class_grid(model: MnistFlow, per_class: int, scale: float, h: float, seed: int,
               on_step: StepCallback | None = None, eta: float = 0.0) -> torch.Tensor:
    """``per_class`` guided samples of every digit in one batch, ordered 0,0,…,1,1,…: (10·per_class, 1, 28, 28) in
    [0, 1] (``eta``: the noise level of ``lib.flow.euler.ancestral_step``, 0 for the spec's Euler steps)."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    labels = torch.arange(10, device=model.device).repeat_interleave(per_class)
    return sample(model, F.one_hot(labels, 10).float(), scale=scale, num_samples=len(labels), generator=gen, h=h,
                  on_step=on_step, eta=eta)


def unconditional_grid(model: MnistFlow, n: int, h: float, seed: int,
                       on_step: StepCallback | None = None, eta: float = 0.0) -> torch.Tensor:
    """``n`` samples without a class (the time model, or the class model's unconditional branch alone), at noise
    level ``eta``."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return sample(model, model.null_condition(), scale=0.0 if model.conditional else 1.0, num_samples=n,
                  generator=gen, h=h, on_step=on_step, eta=eta)


def sample_grid(model: MnistFlow, h: float, seed: int = 0, scale: float = GUIDANCE_SCALE,
                on_step: StepCallback | None = None, eta: float = 0.0) -> torch.Tensor:
    """A flow model's grid of 40: 4 guided samples of each digit (class model) or 40 samples (time model), as
    (40, 28, 28) uint8, at noise level ``eta``."""
    if model.conditional:
        x = class_grid(model, GRID_PER_CLASS, scale, h, seed, on_step=on_step, eta=eta)
    else:
        x = unconditional_grid(model, GRID_SAMPLES, h, seed, on_step=on_step, eta=eta)
    return to_uint8(x, model.value_range)[:, 0]


def grid_steps(config: TrainConfig) -> int:
    """Euler steps of a run's per-epoch grid: ⌈num_ts / sample_stride⌉."""
    return euler_step_count(0.0, step_size(config.model, config.sample_stride))


def flow_snapshot(model: torch.nn.Module, config: TrainConfig, seed: int = 0, scale: float = GUIDANCE_SCALE,
                  on_step: StepCallback | None = None) -> torch.Tensor:
    """The per-epoch grid of a flow run: ``sample_grid`` at the run's ``sample_stride``."""
    return sample_grid(MnistFlow(model, config), step_size(config.model, config.sample_stride), seed, scale, on_step)

"""The built-in backend: a part-B MNIST DDPM behind the same ``NoiseModel`` interface as DeepFloyd IF.

A "prompt" is a digit: "7", "seven" and "a handwritten 7" all mean class 7; the null prompt is the all-zero class
vector the model saw with probability p_uncond during training. Pixels are in [−1, 1]; the sampler uses the spec's
x_{t−1} = … + √β_t z (``fixed_large``), and a full chain is T−1, T−2, …, 0 followed by the clean image (t = −1).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from lib.ddpm.diffusion import VarianceType
from lib.media.images import to_uint8
from lib.train.precision import for_inference, infer
from lib.ddpm.sampling import PromptError, sample
from lib.ddpm.schedules import Schedule, chain_timesteps
from lib.train.training import TrainConfig

GUIDANCE_SCALE = 5.0  # the spec's γ for the class-conditioned DDPM (part B3), also part A's on the MNIST model
SAMPLING_STRIDE = 10  # the app's default stride over T = 300: 30 denoising steps, seconds on a laptop CPU
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def parse_digit_prompt(prompt: str) -> int | None:
    """The digit a prompt asks for, or None for the empty (unconditional) prompt.

    Accepts one digit or digit word anywhere in the text ("7", "Seven", "a handwritten 7"); anything else is an error,
    a number such as "38" too (it names the digits 3 and 8).
    """
    text = (prompt or "").strip().lower()
    if not text:
        return None
    found = {int(d) for d in re.findall(r"\d", text)}
    found |= {DIGIT_WORDS.index(w) for w in re.findall(r"[a-z]+", text) if w in DIGIT_WORDS}
    if len(found) == 1:
        return found.pop()
    quoted = f"“{prompt[:60]}{'…' if len(prompt) > 60 else ''}”"
    if not found:
        raise PromptError(f"{quoted} names no digit; the MNIST model draws only the digits 0–9: type one of them or its "
                          "name, or choose DeepFloyd IF in the sidebar for free text.")
    digits = [str(d) for d in sorted(found)]
    count = [*DIGIT_WORDS, "ten"][len(digits)]
    raise PromptError(f"{quoted} names {count} digits ({', '.join(digits[:-1])} and {digits[-1]}); "
                      "the MNIST model draws one digit: type one of 0–9 or its name.")


class DigitConditions:
    """Prompts of the part-B models (both editions): a digit's one-hot class vector, or the all-zero "no class"."""

    device: torch.device

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        digit = parse_digit_prompt(prompt)
        return self.null_condition() if digit is None else self.class_condition(digit)

    def class_condition(self, digit: int) -> torch.Tensor:
        return F.one_hot(torch.tensor([digit], device=self.device), 10).float()

    def null_condition(self) -> torch.Tensor:
        return torch.zeros(1, 10, device=self.device)


class MnistDDPM(DigitConditions):
    """A trained time- or class-conditioned part-B UNet as a ``NoiseModel``."""

    image_shape = (1, 28, 28)
    variance_type: VarianceType = "fixed_large"
    dtype = torch.float32

    def __init__(self, model: torch.nn.Module, config: TrainConfig, device: torch.device | str | None = None):
        """``device`` defaults to where the model already is."""
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = for_inference(model, self.device)
        self.config = config
        self.schedule: Schedule = config.schedule()
        self.conditional = config.model == "class"
        self.name = f"MNIST {'class' if self.conditional else 'time'}-conditioned DDPM (D = {config.hidden})"

    def predict(self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor):
        t_norm = (torch.as_tensor(t, dtype=torch.float64) / self.config.num_timesteps).float().to(x_t.device).expand(
            x_t.shape[0])  # t / T in float64, then float32: the same number for an int t and for a row of a tensor
        if self.conditional:
            return infer(self.model, x_t, t_norm, cond.to(x_t)), None
        return infer(self.model, x_t, t_norm), None

    def timesteps(self, stride: int) -> list[int]:
        """[T−1, T−1−stride, …] then −1 (the clean image): stride 1 is the spec's full 300-step chain."""
        return chain_timesteps(self.config.num_timesteps, stride)


def class_grid(model: MnistDDPM, per_class: int, scale: float, stride: int, seed: int, on_step=None) -> torch.Tensor:
    """``per_class`` CFG samples of every digit in one batch, ordered 0,0,…,1,1,…: (10·per_class, 1, 28, 28) in [−1, 1]."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    labels = torch.arange(10, device=model.device).repeat_interleave(per_class)
    cond = F.one_hot(labels, 10).float()  # one condition row per image
    return sample(model, cond, scale=scale, stride=stride, num_samples=len(labels), generator=gen, on_step=on_step)


def unconditional_grid(model: MnistDDPM, n: int, stride: int, seed: int, on_step=None) -> torch.Tensor:
    """``n`` samples without a class (the time-conditioned model, or the class model's unconditional half)."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    return sample(model, model.null_condition(), scale=0.0 if model.conditional else 1.0, stride=stride,
                  num_samples=n, generator=gen, on_step=on_step)


def sample_grid(model: MnistDDPM, stride: int, seed: int = 0, scale: float = GUIDANCE_SCALE, on_step=None) -> torch.Tensor:
    """A DDPM's grid of 40: 4 CFG samples of each digit (class model, guidance ``scale``) or 40 samples (time model),
    (40, 28, 28) uint8."""
    if model.conditional:
        x = class_grid(model, 4, scale, stride, seed, on_step=on_step)
    else:
        x = unconditional_grid(model, 40, stride, seed, on_step=on_step)
    return to_uint8(x, (-1.0, 1.0))[:, 0]


def ddpm_snapshot(model: torch.nn.Module, config: TrainConfig, seed: int = 0, scale: float = GUIDANCE_SCALE,
                  on_step=None) -> torch.Tensor:
    """The per-epoch grid of a DDPM run: ``sample_grid`` at the run's ``sample_stride``."""
    return sample_grid(MnistDDPM(model, config), config.sample_stride, seed, scale, on_step)

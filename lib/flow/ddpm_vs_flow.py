"""DDPM and flow matching side by side (issue 24, item 5): the same UNet, the same digits, the same starting noise, the
two objectives — what each draws for a given number of network function evaluations (NFE).

Both contenders are the class-conditioned part-B models, sampling with classifier-free guidance at their spec's γ;
one step is one batched UNet call on the conditional and the unconditional rows together, so k steps are k NFE:

* **DDPM** (noise prediction, T = 300): ancestral sampling along the strided chain of its own sampler,
  ``chain_timesteps(T, T / k)`` — k steps from t = T − 1 to the clean image, each adding fresh noise √β z;
* **flow matching** (velocity prediction): k Euler steps of h = 1 / k from t = 0 (noise) to t = 1 (image), none added.

Both start from the same ε ~ N(0, I), drawn from one seeded generator (``seeded_noise``); the DDPM then draws its
per-step noise from that generator. Their pixels differ as their specs train them — the DDPM's in [−1, 1], the flow
model's in [0, 1] — so every image here is mapped to the classifier's [−1, 1] (``to_classifier_range``) before it is
judged, shown or compared.

Quality is read two ways. The classifier ``lib.train.digit_classifier`` (no network download): the share of samples it
reads confidently, and the share it reads as the digit that was asked for — with guidance this saturates within one or
two evaluations, since a guided one-step estimate is a smooth class average the classifier reads easily. And the ink:
the share of mid-grey pixels (``mid_grey_share``), which real MNIST digits, nearly black and white, keep at ≈ 8.5 %
and a sample still blurry or noisy exceeds — where the number of steps still shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lib.backends.mnist_model import GUIDANCE_SCALE as DDPM_GUIDANCE_SCALE
from lib.backends.mnist_model import MnistDDPM
from lib.ddpm.sampling import cfg_predictor as ddpm_predictor
from lib.ddpm.sampling import denoise_on, randn
from lib.ddpm.schedules import chain_timesteps
from lib.flow.euler import cfg_predictor as flow_predictor
from lib.flow.euler import euler
from lib.flow.mnist import GUIDANCE_SCALE as FLOW_GUIDANCE_SCALE
from lib.flow.mnist import MnistFlow
from lib.media.images import to_uint8
from lib.train.digit_classifier import Quality, quality, to_classifier_range

NFE_COUNTS = (1, 2, 5, 10, 30, 50, 100, 300)  # the sweep; each divides the DDPM's T = 300
TARGET_AGREEMENT = 0.9  # "good enough": 9 samples in 10 read as the digit asked for
MID_GREY = 0.8  # a pixel x in [−1, 1] with |x| < MID_GREY is neither background nor ink
# "finished ink": a mid-grey share at most this many times real digits'; 1.25 leaves room for a 20-sample measurement's
# spread while a sample one step short (DDPM 5 – 10 NFE: 1.35 – 1.4×, bench/RESULTS.md) stays out
INK_TOLERANCE = 1.25
IMAGE_SHAPE = (1, 28, 28)

# on_step(k, t', x_t', estimate) after step k (0-based) reaching the model's own time t': both loops' callback
StepCallback = Callable[[int, float, torch.Tensor, torch.Tensor], None]


class Contender(Protocol):
    """One objective's model and sampler, as the comparison drives it."""

    name: str
    value_range: tuple[float, float]
    device: torch.device

    def draw(self, noise: torch.Tensor, labels: torch.Tensor, nfe: int, generator: torch.Generator,
             on_step: StepCallback | None = None) -> torch.Tensor:
        """Guided samples of the digits ``labels`` from ``noise`` in exactly ``nfe`` network evaluations."""

    def time_label(self, t: float) -> str:
        """The model's own time t' reached by a step, in words."""


def ddpm_timesteps(num_timesteps: int, nfe: int) -> list[int]:
    """The DDPM sampler's strided chain with ``nfe`` steps: ``chain_timesteps(T, T / nfe)`` = [T − 1, T − 1 − s, …, −1]
    with s = T / nfe (so ``nfe`` must divide T: another count has no stride of exactly that many steps)."""
    if not 1 <= nfe <= num_timesteps or num_timesteps % nfe:
        raise ValueError(f"{nfe} steps: the DDPM's strided chain over T = {num_timesteps} takes a divisor of "
                         f"{num_timesteps}")
    return chain_timesteps(num_timesteps, num_timesteps // nfe)


@dataclass(frozen=True)
class DdpmContender:
    """The class-conditioned DDPM, ancestral sampling along its strided chain."""

    den: MnistDDPM
    scale: float = DDPM_GUIDANCE_SCALE
    name = "DDPM"
    value_range = (-1.0, 1.0)  # the NoiseModel contract's pixels

    @property
    def device(self) -> torch.device:
        return self.den.device

    def draw(self, noise, labels, nfe, generator, on_step=None):
        predict = ddpm_predictor(self.den, F.one_hot(labels, 10).float(), self.den.null_condition(), self.scale)
        return denoise_on(self.den, noise, ddpm_timesteps(self.den.schedule.num_timesteps, nfe), predict, generator,
                          on_step=on_step)

    def time_label(self, t: float) -> str:
        return "clean image" if t < 0 else f"t = {int(t)}"


@dataclass(frozen=True)
class FlowContender:
    """The class-conditioned flow model, Euler steps of h = 1 / NFE from noise (t = 0) to the image (t = 1)."""

    model: MnistFlow
    scale: float = FLOW_GUIDANCE_SCALE
    name = "flow matching"

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def value_range(self) -> tuple[float, float]:
        return self.model.value_range

    def draw(self, noise, labels, nfe, generator, on_step=None):
        predict = flow_predictor(self.model, F.one_hot(labels, 10).float(), self.model.null_condition(), self.scale)
        return euler(noise, 0.0, None, predict, steps=nfe, on_step=on_step)

    def time_label(self, t: float) -> str:
        return f"t = {t:.3g}"


def seeded_noise(num: int, seed: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Generator]:
    """ε ~ N(0, I) of shape (num, 1, 28, 28) from a generator seeded with ``seed`` on ``device``, and that generator
    (for a sampler's own later draws): the same seed gives both contenders the same ε."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return randn((num, *IMAGE_SHAPE), generator, device=device, dtype=torch.float32), generator


def digit_labels(per_digit: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """0, 0, …, 1, 1, …, 9: ``per_digit`` of each digit."""
    return torch.arange(10, device=device).repeat_interleave(per_digit)


def mid_grey_share(images: torch.Tensor) -> float:
    """The share of pixels (over the whole batch) with |x| < ``MID_GREY``, images in [−1, 1]."""
    return (images.abs() < MID_GREY).float().mean().item()


@dataclass(frozen=True)
class Measured:
    """One point of a quality curve: the samples drawn in ``nfe`` evaluations and how they read."""

    nfe: int
    quality: Quality
    samples: torch.Tensor  # uint8 (N, 28, 28), in the order of ``digit_labels``
    mid_grey: float  # ``mid_grey_share`` of the samples


def quality_curve(contender: Contender, classifier: nn.Module, per_digit: int, nfe_counts, seed: int,
                  on_step: StepCallback | None = None) -> list[Measured]:
    """``per_digit`` guided samples of every digit at each NFE of ``nfe_counts``, all from the same noise (``seed``),
    judged by ``classifier``."""
    labels = digit_labels(per_digit, contender.device)
    points = []
    for nfe in nfe_counts:
        noise, generator = seeded_noise(len(labels), seed, contender.device)
        x = to_classifier_range(contender.draw(noise, labels, nfe, generator, on_step), contender.value_range)
        points.append(Measured(nfe, quality(classifier, x, labels), to_uint8(x)[:, 0], mid_grey_share(x)))
    return points


def fewest_evaluations(points: list[Measured], threshold: float = TARGET_AGREEMENT) -> int | None:
    """The smallest NFE among ``points`` whose samples read as the asked digit at least ``threshold`` of the time;
    None if none does."""
    return min((p.nfe for p in points if p.quality.agrees >= threshold), default=None)


def fewest_for_finished_ink(points: list[Measured], real_mid_grey: float, tolerance: float = INK_TOLERANCE) -> int | None:
    """The smallest NFE among ``points`` whose samples' mid-grey share is at most ``tolerance`` × real digits'
    (``real_mid_grey``); None if none is."""
    return min((p.nfe for p in points if p.mid_grey <= tolerance * real_mid_grey), default=None)


@dataclass(frozen=True)
class Trajectory:
    """One sample's path: the state before the first step and after each of the k steps, and where each stands."""

    frames: torch.Tensor  # (k + 1, 1, 28, 28) in [−1, 1]: the starting noise, then x after each step
    labels: list[str]  # per frame: the model's own time reached ("start" for the noise)

    @property
    def fractions(self) -> list[float]:
        """The share of the k network evaluations spent to reach each frame: 0, 1/k, …, 1."""
        k = len(self.frames) - 1
        return [i / k for i in range(k + 1)]

    def distance_to_final(self) -> list[float]:
        """‖x_i − x_k‖ / ‖x_0 − x_k‖ per frame: 1 at the starting noise, 0 at the finished digit; 1 − i/k along a
        straight path walked at constant speed. Unchanged by the affine map between pixel ranges."""
        offsets = (self.frames - self.frames[-1]).flatten(1).norm(dim=1)
        return (offsets / offsets[0]).tolist()


def trajectory(contender: Contender, digit: int, nfe: int, seed: int) -> Trajectory:
    """One guided sample of ``digit`` from the noise of ``seed``, in ``nfe`` steps, every state kept."""
    noise, generator = seeded_noise(1, seed, contender.device)
    frames, labels = [noise], ["start: pure noise"]

    def keep(k: int, t: float, x: torch.Tensor, estimate: torch.Tensor) -> None:
        frames.append(x)
        labels.append(f"step {k + 1}/{nfe} · {contender.time_label(t)}")

    contender.draw(noise, torch.tensor([digit], device=contender.device), nfe, generator, keep)
    stacked = torch.cat([to_classifier_range(f.detach().float().cpu(), contender.value_range) for f in frames])
    return Trajectory(stacked, labels)

"""How a time-only model's samples are drawn to be judged: by its page's sampler at the page's default steps, without
a class, in the judge's [−1, 1]. The one home for the pages' "spec against better" comparison, scripts/judge_runs.py
and tests/test_shipped_better_models.py, so that the shares they report are of the same samples.

* a DDPM (B2, ``MnistDDPM``): the strided ancestral chain at stride ``DDPM_STRIDE`` (30 of T = 300 steps);
* a flow (flow edition B 2.3, ``MnistFlow``): ``FLOW_STEPS`` steps from t = 0 (h = 1/50, the notebook's num_ts) —
  Euler's, or the path's ancestral step at a noise level η > 0 (``lib.flow.euler.ancestral_step``; a run's own η is
  ``model_store.sampler_eta``) — its [0, 1] pixels mapped to [−1, 1].
"""

from __future__ import annotations

import torch

from lib.backends import mnist_model
from lib.backends.mnist_model import SAMPLING_STRIDE, MnistDDPM
from lib.flow import mnist as flow_mnist
from lib.flow.mnist import MnistFlow
from lib.train.digit_classifier import to_classifier_range
from lib.train.training import FLOW_SAMPLER_STEPS

DDPM_STRIDE = SAMPLING_STRIDE
FLOW_STEPS = FLOW_SAMPLER_STEPS["flow_time"]


def sampler_calls(model: MnistDDPM | MnistFlow) -> int:
    """UNet calls per batch of judged samples: the DDPM chain's steps at ``DDPM_STRIDE``, or ``FLOW_STEPS``."""
    if isinstance(model, MnistFlow):
        return FLOW_STEPS
    return len(model.timesteps(DDPM_STRIDE)) - 1


def judged_samples(model: MnistDDPM | MnistFlow, n: int, seed: int = 0, on_step=None, eta: float = 0.0) -> torch.Tensor:
    """``n`` samples of a time-only ``model`` (or a class model's unconditional branch), seeded, in [−1, 1]; a flow's
    at noise level ``eta``."""
    if isinstance(model, MnistFlow):
        x = flow_mnist.unconditional_grid(model, n, 1.0 / FLOW_STEPS, seed, on_step=on_step, eta=eta)
        return to_classifier_range(x, model.value_range)
    if eta:
        raise ValueError("a DDPM's chain has no noise level to choose: it is ancestral")
    return mnist_model.unconditional_grid(model, n, DDPM_STRIDE, seed, on_step=on_step)

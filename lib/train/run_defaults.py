"""Which training run a part-B page opens on: the shipped model's configuration, else the spec's — cut to short epochs
where there is no GPU, so that pressing *Train* on a laptop takes minutes, not hours.

A short run is the spec's run with ``SHORT_STEPS[model]`` batches per epoch (never more than a full epoch: a small
training set, such as the offline digits, has short full epochs) and, for the samplers, per-epoch grids drawn at the
app's sampling stride instead of the full chain.
"""

from __future__ import annotations

from dataclasses import replace

from lib.train import model_store
from lib.backends.mnist_model import SAMPLING_STRIDE
from lib.train.training import TrainConfig

SHORT_STEPS = {"denoiser": 16, "time": 25, "class": 50}  # batches per epoch of a short run (minutes on a CPU)


def default_config(model: str, num_examples: int, dataset: str, *, on_gpu: bool) -> TrainConfig:
    """The shipped model's configuration for ``model``, else the spec's (short on a CPU), on ``dataset``."""
    config = model_store.shipped_config(model)
    if config is None:
        spec = TrainConfig.spec(model)
        short = None if on_gpu else min(SHORT_STEPS[model], spec.full_epoch_length(num_examples))
        fast_grids = dict(sample_stride=SAMPLING_STRIDE) if short and model != "denoiser" else {}
        config = replace(spec, steps_per_epoch=short, **fast_grids)
    return replace(config, dataset=dataset)

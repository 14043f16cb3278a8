"""Which training run a part-B page opens on: the shipped run's configuration, else the one it would be trained with —
cut to short epochs where there is no GPU, so that pressing *Train* on a laptop takes minutes, not hours.

A page trains one shipped run (``model_store.SHIPPED_RUNS``: a model's spec, or for B 2.6 the class flow model without
its scheduler). A short run is that run with ``SHORT_STEPS[model]`` batches per epoch (never more than a full epoch: a
small training set, such as the offline digits, has short full epochs) and, for the samplers, per-epoch grids drawn at
``SHORT_GRID_STRIDE[model]`` instead of the full sampler.
"""

from __future__ import annotations

from dataclasses import replace

from lib.train import model_store
from lib.backends.mnist_model import SAMPLING_STRIDE
from lib.train.training import TrainConfig

# Batches per epoch of a short run (minutes on a CPU). The flow edition's runs see as many digits as the DDPM
# edition's short run of the same stage: flow_time 10 × 100 × 64 = time's 20 × 25 × 128 = 64,000; flow_class twice
# that, as class; pure_noise the denoiser's 5 × 16 × 256.
SHORT_STEPS = {"denoiser": 16, "time": 25, "class": 50, "pure_noise": 16, "flow_time": 100, "flow_class": 200}
# The stride of a short run's per-epoch grids: the app's DDPM stride (30 steps over T = 300); a flow's Euler steps
# are stride / num_ts, so stride 1 is the time model's full 50 steps and 10 the class model's 30 (of 300).
SHORT_GRID_STRIDE = {"time": SAMPLING_STRIDE, "class": SAMPLING_STRIDE, "flow_time": 1, "flow_class": 10}


def default_config(name: str, num_examples: int, dataset: str, *, on_gpu: bool) -> TrainConfig:
    """The configuration of the shipped run ``name`` as shipped, else as it is trained (short on a CPU), on
    ``dataset``."""
    config = model_store.shipped_config(name)
    if config is None:
        full = model_store.shipped_run_config(name)
        short = None if on_gpu else min(SHORT_STEPS[full.model], full.full_epoch_length(num_examples))
        fast_grids = dict(sample_stride=SHORT_GRID_STRIDE[full.model]) if short and full.model in SHORT_GRID_STRIDE else {}
        config = replace(full, steps_per_epoch=short, **fast_grids)
    return replace(config, dataset=dataset)

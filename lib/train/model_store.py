"""Trained part-B models on disk: the shipped ones in ``data/models`` and retrained ones in the cache.

One safetensors file holds a whole run — ``model.*`` (the state dict), ``ema.*`` (the EMA of the weights, for DDPM
and flow runs that kept one), ``loss`` (one value per optimiser step), ``snapshot.<epoch>`` (uint8 sample grids) — with
the ``TrainConfig`` and provenance in its metadata. The shipped files are ordinary entries whose configuration is read
from their metadata, so asking for a shipped configuration loads it. Each shipped run has a name (``SHIPPED_RUNS``), its
file ``data/models/<name>.safetensors``; one model may have several (the flow edition's class model with and without
its learning-rate schedule).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lib import PROJECT_ROOT
from lib.train import cache
from lib.train.precision import for_inference
from lib.train.resume import being_trained, step_in_header
from lib.train.training import FLOW_CONSTANT_LR, TrainConfig, TrainedRun, fresh_network

ROOT = PROJECT_ROOT
SHIPPED_DIR = ROOT / "data" / "models"
CACHE_DIR = Path(os.environ.get("DIFFUSION_LAB_CACHE", ROOT / "data" / "cache"))
CACHE_MAX_BYTES = int(float(os.environ.get("DIFFUSION_LAB_CACHE_MAX_MB", "2048")) * 2**20)
# The shipped runs: name → (model, the fields that differ from the model's spec). The DDPM edition's three and the
# flow edition's spec runs are named after their model; B 2.6's class flow model without ExponentialLR is its own run.
SHIPPED_RUNS: dict[str, tuple[str, dict]] = {
    "denoiser": ("denoiser", {}),
    "time": ("time", {}),
    "class": ("class", {}),
    "pure_noise": ("pure_noise", {}),
    "flow_time": ("flow_time", {}),
    "flow_class": ("flow_class", {}),
    "flow_class_constant_lr": ("flow_class", {"constant_lr": True, "lr": FLOW_CONSTANT_LR}),
    # "A better time-conditioned UNet" (beyond the spec, both objectives): the ``AttentionTimeUNet`` — t told to every
    # block through 32 Fourier features, self-attention at 7×7 — at the spec's D 64, batch 128 at a peak rate of 2e-3;
    # the flow 80 epochs (≈ 7.5 h on a 2-core CPU, over several sittings), the DDPM 40 (its mid-run reading was 90 % by
    # epoch 33, the flow's 80-epoch Euler figure), with a schedule whose x_T holds 2 % of the digit, not 22 % (β_T 0.05:
    # sampling starts from pure noise). Why: bench/RESULTS.md
    "time_beyond_spec": ("time", {"architecture": "attention", "time_features": 32, "beta_end": 0.05, "epochs": 40,
                                  "lr": 2e-3, "snapshot_epochs": (1, 5, 10, 20, 40)}),
    "flow_time_beyond_spec": ("flow_time", {"architecture": "attention", "time_features": 32, "epochs": 80,
                                            "batch_size": 128, "lr": 2e-3, "snapshot_epochs": (1, 5, 10, 20, 40, 80)}),
}
# The time-only spec runs whose pages offer the better recipe beside them: spec run → its run beyond the spec
BETTER_RUNS = {"time": "time_beyond_spec", "flow_time": "flow_time_beyond_spec"}
# How a flow run samples when nothing else is chosen: the noise level η of ``lib.flow.euler.ancestral_step``. The spec's
# Euler steps are η = 0; the better flow recipe samples with the path's ancestral step, η = 1 (bench/RESULTS.md: the
# same weights draw 2 points more confident digits). The DDPMs' chain is ancestral already.
SAMPLER_ETA = {"flow_time_beyond_spec": 1.0}


def sampler_eta(name: str) -> float:
    """The noise level the shipped run ``name`` samples with by default (``SAMPLER_ETA``, else the spec's 0)."""
    return SAMPLER_ETA.get(name, 0.0)


def config_from_json(text: str) -> TrainConfig:
    d = json.loads(text)
    d["snapshot_epochs"] = tuple(d["snapshot_epochs"])
    return TrainConfig(**d)


def save_run(result: TrainedRun, path: Path, info: dict, weights_dtype: torch.dtype = torch.float32) -> Path:
    def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: (v.to(weights_dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}

    tensors = {**cache.nest("model", weights(result.model)), **cache.nest("snapshot", result.snapshots),
               "loss": torch.tensor(result.losses, dtype=torch.float32)}
    if result.ema is not None:
        tensors.update(cache.nest("ema", weights(result.ema)))
    meta = {"config": result.config.to_json(), "info": json.dumps(info, sort_keys=True)}
    return cache.save_entry(path, tensors, meta)


def load_run(path: Path, device: torch.device | str = "cpu") -> TrainedRun:
    """Load a saved run; raises ``cache.CorruptEntry`` if the file cannot be trusted."""
    tensors, meta = cache.load_entry(path)
    try:
        config = config_from_json(meta["config"])
        model = _model(config, cache.unnest("model", tensors), device)
        ema_state = cache.unnest("ema", tensors)
        ema = _model(config, ema_state, device) if ema_state else None
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise cache.CorruptEntry(f"{Path(path).name}: not a Diffusion Lab run ({err})") from err
    snapshots = {int(epoch): grid for epoch, grid in cache.unnest("snapshot", tensors).items()}
    return TrainedRun(config, model, tensors["loss"].tolist(), dict(sorted(snapshots.items())),
                      json.loads(meta.get("info", "{}")), ema)


def _model(config: TrainConfig, state: dict[str, torch.Tensor], device: torch.device | str) -> torch.nn.Module:
    """The UNet of ``config`` with the weights ``state`` (stored in fp16 or fp32), ready for inference on ``device``."""
    model = fresh_network(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return for_inference(model, device)


def _stem(config: TrainConfig) -> str:
    return f"{config.model}-{cache.config_key(config.as_dict())}"


def cache_path(config: TrainConfig) -> Path:
    return CACHE_DIR / f"{_stem(config)}.safetensors"


def resume_path(config: TrainConfig) -> Path:
    """Where a run of ``config`` keeps its resumable state (``lib.train.resume``) while it is unfinished."""
    return CACHE_DIR / f"{_stem(config)}.resume.safetensors"


@dataclass(frozen=True)
class UnfinishedRun:
    config: TrainConfig
    step: int  # the optimiser step its saved state stands at
    saved_at: float  # when that state was written (seconds since the epoch)
    training_now: bool = False  # a trainer on this machine holds it (``lib.train.resume.sole_trainer``)


def unfinished_runs(model_kind: str) -> list[UnfinishedRun]:
    """The unfinished runs of ``model_kind`` whose state is saved in the cache, newest first (read from the files'
    headers only; unreadable files are left out)."""
    found = []
    for path in CACHE_DIR.glob(f"{model_kind}-*.resume.safetensors"):
        try:
            mtime, meta = path.stat().st_mtime, cache.read_metadata(path) or {}
            config = config_from_json(meta["config"])
        except (OSError, KeyError, TypeError, ValueError):  # gone meanwhile (its run finished), or not a state
            continue
        step = step_in_header(meta)
        if step is not None and resume_path(config) == path:
            found.append(UnfinishedRun(config, step, mtime, being_trained(path)))
    return sorted(found, key=lambda run: run.saved_at, reverse=True)


def finished_runs(model_kind: str) -> list[TrainConfig]:
    """The configurations of the finished runs of ``model_kind`` stored in the cache, the most recently written or
    loaded first (the cache's recency, ``cache.evict``'s order); read from the files' headers only, unreadable files
    and unfinished runs' states left out. ``lookup`` loads one."""
    found = []
    for path in CACHE_DIR.glob(f"{model_kind}-*.safetensors"):
        if path.name.endswith(".resume.safetensors"):
            continue
        try:
            mtime, meta = path.stat().st_mtime, cache.read_metadata(path) or {}
            config = config_from_json(meta["config"])
        except (OSError, KeyError, TypeError, ValueError):  # gone meanwhile (evicted), or not a run
            continue
        if cache_path(config) == path:
            found.append((mtime, config))
    return [config for _, config in sorted(found, key=lambda found: found[0], reverse=True)]


def shipped_run_config(name: str, **overrides) -> TrainConfig:
    """The configuration a shipped run ``name`` is trained with: its model's spec, the run's own fields, ``overrides``
    (seed, dataset, short epochs, …)."""
    model, fields = SHIPPED_RUNS[name]
    return TrainConfig.spec(model, **{**fields, **overrides})


def shipped_names(model_kind: str) -> list[str]:
    """The names of the shipped runs of ``model_kind``."""
    return [name for name, (model, _) in SHIPPED_RUNS.items() if model == model_kind]


def shipped_path(name: str) -> Path:
    """The file of the shipped run ``name`` (a model's name for the DDPM edition's three)."""
    return SHIPPED_DIR / f"{name}.safetensors"


def shipped_config(name: str) -> TrainConfig | None:
    """The configuration the shipped run ``name`` was trained with (read from its header only).

    None when there is no shipped file or its header is unreadable (a damaged file counts as absent; ``load_run``
    would reject it anyway).
    """
    try:
        return config_from_json((cache.read_metadata(shipped_path(name)) or {})["config"])
    except (KeyError, TypeError, ValueError):
        return None


def stored_paths(config: TrainConfig) -> list[Path]:
    """The files that may hold a finished run of ``config``, in the order they are tried: the shipped runs whose header
    names ``config``, then its cache entry (listed whether it exists or not)."""
    shipped = [shipped_path(name) for name in shipped_names(config.model) if shipped_config(name) == config]
    return [*shipped, cache_path(config)]


def _first_stored(config: TrainConfig, read):
    """``(path, read(path))`` for the first of ``stored_paths(config)`` that ``read`` accepts; None if there is none.

    A corrupt cache entry is deleted (so the caller retrains and rewrites it). A corrupt shipped file is left alone (it
    belongs to the release) and the next file is tried."""
    for path in stored_paths(config):
        try:
            return path, read(path)
        except FileNotFoundError:
            continue
        except cache.CorruptEntry:
            if path == cache_path(config):
                path.unlink(missing_ok=True)
    return None


def lookup(config: TrainConfig, device: torch.device | str = "cpu") -> TrainedRun | None:
    """The trained model for ``config``: shipped if it matches, else the cache entry; None if it must be trained."""
    found = _first_stored(config, lambda path: load_run(path, device))
    return found[1] if found else None


def preferred_run(name: str, load: Callable[[TrainConfig], TrainedRun | None] = lookup
                  ) -> tuple[TrainedRun, bool] | None:
    """The run that stands for the shipped run ``name`` and whether it is the shipped one: the shipped file if there is
    one, else the newest finished run of its model in the cache that loads (``finished_runs``' order); None if there
    is neither. The flow edition's part A runs on ``flow_class`` this way, in the app and on the model server.

    ``load`` is ``lookup`` or a wrapper of it that keeps loaded runs (the app's ``ui.common.trained``)."""
    shipped = shipped_config(name)
    for config in [*([shipped] if shipped is not None else []), *finished_runs(SHIPPED_RUNS[name][0])]:
        run = load(config)
        if run is not None:
            return run, config == shipped
    return None


def stored_file(config: TrainConfig) -> Path | None:
    """The verified file (``cache.load_entry``'s digest check) that ``lookup`` would load for ``config``, for the model
    server to send as it is; None if it must be trained."""
    found = _first_stored(config, cache.load_entry)
    return found[0] if found else None


def store(result: TrainedRun, info: dict) -> Path:
    """Save a finished run in the cache and keep the cache under its size cap (least recently used go first)."""
    return _kept_under_cap(save_run(result, cache_path(result.config), info))


def store_file(config: TrainConfig, data: bytes) -> Path:
    """A whole run file received from elsewhere (the model server's, already checked against its digest) as the cache
    entry of ``config``, written atomically; the cache is kept under its size cap. ``load_run`` verifies it on reading."""
    path = cache_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.atomic_file(path) as tmp:
        Path(tmp).write_bytes(data)
    return _kept_under_cap(path)


def _kept_under_cap(path: Path) -> Path:
    cache.evict(CACHE_DIR, CACHE_MAX_BYTES, keep=(path,))
    return path

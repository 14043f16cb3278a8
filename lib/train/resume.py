"""A training run's whole state mid-way, in one safetensors file, so a stopped run continues exactly where it stopped.

A full-spec run of the B1 denoiser takes hours on a laptop CPU; a closed laptop, a restarted app or a cancelled run
should not throw that away. ``lib.train.training.train`` saves this state every few minutes and when it is cancelled, and
picks it up when started again with the same configuration on the same kind of device at the same precision.

What makes the continuation identical to a run that never stopped (pinned by ``tests/test_resume.py``):

* the model's parameters and buffers (BatchNorm's running statistics), in fp32, and those of its EMA (``lib.train.ema``);
* Adam's moments and step counts, and the learning-rate scheduler's position;
* the random generator's state (it draws the noise, t, class dropout and the shuffles) and the current shuffled order
  of the training set with the position in it;
* the progress so far: optimiser steps, per-step losses, snapshot grids, seconds spent.

The state is written only where it is consistent: between optimiser steps, with every loss read back and the end of an
epoch (learning-rate step, snapshot) either fully done or not begun. Files go through ``lib.train.cache.save_entry``
(atomic, digest-checked), so a run killed mid-write resumes from the previous save; nothing is unpickled.

One process trains a run at a time (``sole_trainer``): the training script and the app (or two apps) on one machine
share the cache, and a second trainer of the same run would spend the CPU again on bit-identical work. The lock is
the operating system's (``filelock``: flock, or msvcrt on Windows) on a file beside the state, so a killed trainer
leaves no stale lock behind.
"""

from __future__ import annotations

import json
from contextlib import contextmanager, suppress
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from lib.train import cache

TRAINED_ELSEWHERE = ("These settings are being trained right now by another process on this machine (or another "
                     "session of this app); their model appears once that run ends.")
PROBE_GRACE_SECONDS = 1.0  # how long a trainer waits for the lock before it is refused


class TrainedElsewhere(RuntimeError):
    """Another trainer — another process, or another thread of this one — is training this run right now."""


def _lock_file(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".lock")


@contextmanager
def sole_trainer(path: Path):
    """Hold the lock of the run whose state is kept at ``path`` while the block trains it; ``TrainedElsewhere`` if
    another trainer holds it (after ``PROBE_GRACE_SECONDS``, not at once: a page's ``being_trained`` holds it for an
    instant). The lock file goes when the lock is released."""
    lock = FileLock(_lock_file(path), thread_local=False)
    try:
        lock.acquire(timeout=PROBE_GRACE_SECONDS)
    except Timeout:
        raise TrainedElsewhere(TRAINED_ELSEWHERE) from None
    try:
        yield
    finally:
        lock.release()
        with suppress(OSError):  # e.g. Windows, while a prober has it open: an empty file left behind is harmless
            _lock_file(path).unlink(missing_ok=True)


def being_trained(path: Path) -> bool:
    """Whether a trainer holds the lock of the run whose state is kept at ``path`` (``sole_trainer``). A trainer
    always has the lock file, so without one nothing is probed (and no file is made)."""
    if not _lock_file(path).exists():
        return False
    lock = FileLock(_lock_file(path), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def save_state(path: Path, config_json: str, device: torch.device, precision: str, progress, order: torch.Tensor,
         cursor: int, model: torch.nn.Module, opt: torch.optim.Optimizer, sched, gen: torch.Generator,
         ema: torch.nn.Module | None = None) -> None:
    """Write the run's state to ``path`` (atomically; the previous save stays until the new one is complete).

    ``progress`` is the run's ``lib.train.training.Progress``; ``order`` the current shuffled pass over the training set and
    ``cursor`` how much of it has been used; ``ema`` the average of the weights, for runs that keep one."""
    opt_state = opt.state_dict()
    tensors = {**cache.nest("model", model.state_dict()), **cache.nest("snapshot", progress.snapshots),
               "rng": gen.get_state(), "order": order, "loss": torch.tensor(progress.losses, dtype=torch.float64)}
    if ema is not None:
        tensors.update(cache.nest("ema", ema.state_dict()))
    for index, slots in opt_state["state"].items():  # Adam: step, exp_avg, exp_avg_sq per parameter
        tensors.update(cache.nest(f"opt.{index}", {k: torch.as_tensor(v) for k, v in slots.items()}))
    meta = {
        "config": config_json,
        "device": device.type,
        "precision": precision,
        "param_groups": json.dumps(opt_state["param_groups"]),
        "scheduler": json.dumps(sched.state_dict() if sched else None),
        "position": json.dumps({"step": progress.step, "epoch": progress.epoch, "cursor": cursor,
                                "seconds": progress.seconds, "resumed_at": progress.resumed_at,
                                "grid_steps": progress.grid_steps, "grid_seconds": progress.grid_seconds,
                                "grid_steps_done": progress.grid_steps_done}),
    }
    cache.save_entry(path, tensors, meta)


def load_state(path: Path, config_json: str, device: torch.device, precision: str, progress, model: torch.nn.Module,
         opt: torch.optim.Optimizer, sched, gen: torch.Generator,
         ema: torch.nn.Module | None = None) -> tuple[torch.Tensor, int] | None:
    """Restore a state saved by ``save_state`` into ``progress``, ``model``, ``opt``, ``sched``, ``gen`` and ``ema``;
    return the shuffled order and the cursor in it. A state saved before runs kept an EMA starts the average at the
    restored weights.

    None, with nothing restored, when there is no file or it belongs to another configuration, device type or
    precision (its random stream and arithmetic would differ). A damaged file raises ``cache.CorruptEntry``.
    """
    try:
        tensors, meta = cache.load_entry(path)
    except FileNotFoundError:
        return None
    if (meta.get("config"), meta.get("device"), meta.get("precision")) != (config_json, device.type, precision):
        return None
    try:
        model.load_state_dict(cache.unnest("model", tensors))
        if ema is not None:
            ema.load_state_dict(cache.unnest("ema", tensors) or model.state_dict())
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in cache.unnest("opt", tensors).items():
            index, name = key.split(".", 1)
            slots.setdefault(int(index), {})[name] = value
        opt.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
        if sched:
            sched.load_state_dict(json.loads(meta["scheduler"]))
        gen.set_state(tensors["rng"])
        pos = json.loads(meta["position"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise cache.CorruptEntry(f"{path.name}: not a resumable training state ({err})") from err
    snapshots = {int(epoch): grid for epoch, grid in cache.unnest("snapshot", tensors).items()}
    progress.step, progress.epoch, progress.seconds = pos["step"], pos["epoch"], pos["seconds"]
    progress.losses = tensors["loss"].tolist()
    progress.snapshots = dict(sorted(snapshots.items()))
    progress.resumed_at = pos["resumed_at"] + [pos["step"]]
    # the grids' timing (absent from states saved before it was kept: they time their next grid afresh)
    progress.grid_steps = pos.get("grid_steps", 0)
    progress.grid_seconds, progress.grid_steps_done = pos.get("grid_seconds", 0.0), pos.get("grid_steps_done", 0)
    progress.stretch_began = (progress.step, progress.training_seconds())
    return tensors["order"].to(device), pos["cursor"]


def saved_step(path: Path) -> int | None:
    """The optimiser step a saved state stands at, read from its header alone; None when there is no readable file."""
    return step_in_header(cache.read_metadata(path) or {})


def step_in_header(meta: dict) -> int | None:
    """The optimiser step recorded in a saved state's header metadata; None when it records none."""
    try:
        return int(json.loads(meta["position"])["step"])
    except (KeyError, TypeError, ValueError):
        return None

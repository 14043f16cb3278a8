"""A training run from configuration to saved file, and a registry that lets many sessions share one run.

``TrainingJobs.start(config)`` returns the running job for that configuration if there is one, so two users who ask
for the same training watch the same run; a job runs in a background thread, so it survives a page change and never
holds a page's script. When it finishes the run is stored (``model_store.store``) and later requests load it.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from lib.train import model_store, resume
from lib.train.data import Digits
from lib.flow.mnist import flow_snapshot, grid_steps
from lib.media.images import to_uint8
from lib.backends.mnist_model import ddpm_snapshot
from lib.train.precision import default_device, infer
from lib.ddpm.schedules import chain_timesteps
from lib.train.training import FLOWS, SAVE_EVERY_SECONDS, Progress, SnapshotFn, TrainConfig, TrainedRun, train

SNAPSHOT_DIGITS = 8  # test digits (classes 0…7) shown denoised after each epoch of the single-step denoiser
PURE_NOISE_SAMPLES = 40  # fresh noise images the pure-noise denoiser maps to digits after each snapshot epoch
STOP_TIMEOUT_SECONDS = 60.0  # a cancel is seen between optimiser steps (~20 s for B1 on a laptop CPU) and sampler steps


def denoiser_probe(test: Digits, sigma: float, seed: int = 0,
                   classes: Sequence[int] = range(SNAPSHOT_DIGITS)) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed test digits (the first test digit of each of ``classes``) and their noisy versions z = x + σ ε, for
    before/after comparisons."""
    idx = torch.stack([torch.nonzero(test.labels == d)[0, 0] for d in classes])
    x = test.images[idx].unsqueeze(1).float() / 255.0
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return x, x + sigma * noise


def pure_noise_probe(n: int = PURE_NOISE_SAMPLES, seed: int = 0) -> torch.Tensor:
    """Fixed pure-noise inputs ε ~ N(0, I), (n, 1, 28, 28): what the pure-noise denoiser is shown after each epoch."""
    return torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def snapshot_fn(config: TrainConfig, test: Digits) -> SnapshotFn:
    """What to record after an epoch: [clean | noisy | denoised] test digits (B1: one forward pass, one step), what the
    pure-noise denoiser makes of fresh noise (B 1.2.3: one pass) or a sample grid (DDPMs and flows: a whole sampler
    run, which reports each of its steps to ``step_done``)."""
    if config.model in ("denoiser", "pure_noise"):
        if config.model == "denoiser":
            clean, noisy = denoiser_probe(test, config.sigma)
            shown, inputs = [clean, noisy], noisy
        else:
            shown, inputs = [], pure_noise_probe()

        def denoised(model, epoch, step_done):
            out = infer(model, inputs.to(next(model.parameters()).device)).cpu()
            step_done(1, 1)
            return to_uint8(torch.cat([*shown, out]), (0.0, 1.0))[:, 0]

        return denoised
    if config.model in FLOWS:
        steps = grid_steps(config)
        return lambda model, epoch, step_done: flow_snapshot(model, config,
                                                             on_step=lambda k, *state: step_done(k + 1, steps))
    steps = len(chain_timesteps(config.num_timesteps, config.sample_stride)) - 1
    return lambda model, epoch, step_done: ddpm_snapshot(model, config,
                                                         on_step=lambda i, *state: step_done(i + 1, steps))


def run_training(
    config: TrainConfig,
    train_set: Digits,
    test_set: Digits,
    device: torch.device | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    precision: str | None = None,
    save_every: float = SAVE_EVERY_SECONDS,
    compile_step: bool = False,
) -> TrainedRun:
    """Train ``config`` on ``train_set``, resumably: a run stopped part-way (cancelled, or its process killed)
    continues from its last saved state (``lib.train.resume``, kept at ``model_store.resume_path``, written every
    ``save_every`` seconds and when cancelled) when started again. ``precision`` and ``compile_step`` as for ``train``
    (default: the app's precision, not compiled).
    ``resume.TrainedElsewhere`` when another trainer on this machine is training ``config`` now."""
    if config.dataset != train_set.source:
        raise ValueError(f"config asks for dataset {config.dataset!r} but the loaded digits are {train_set.source!r}")
    device = device or default_device()
    path = model_store.resume_path(config)
    with resume.sole_trainer(path):
        return train(config, train_set.as_float(device), train_set.labels, snapshot_fn=snapshot_fn(config, test_set),
                     device=device, on_progress=on_progress, should_stop=should_stop, precision=precision,
                     resume=path, save_every=save_every, compile_step=compile_step)


def run_info(run: TrainedRun, train_set: Digits, device: torch.device) -> dict:
    """A finished run's provenance, stored beside its weights: how long (``train``'s record), on what, in what
    precision, on which data."""
    return {**run.info, "seconds": round(run.info["seconds"], 1), "data": train_set.note, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU ({torch.get_num_threads()} thread{'' if torch.get_num_threads() == 1 else 's'})"}


@dataclass
class Job:
    config: TrainConfig
    progress: Progress = field(default_factory=Progress)
    status: str = "running"  # running | done | failed | cancelled
    error: str = ""
    trained: TrainedRun | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> bool:
        """Cancel the run (it saves its state after its current step). True: it stops, for every session of this
        process watching it (a model server's job, ``lib.backends.remote_training.RemoteJob``, may go on for others)."""
        self.cancel.set()
        return True


class TrainingJobs:
    """One background training thread per configuration, shared by every session of the app process."""

    def __init__(self, load_data: Callable[[], tuple[Digits, Digits]], device: torch.device | None = None):
        self._load_data = load_data
        self._device = device
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, config: TrainConfig) -> Job | None:
        with self._lock:
            return self._jobs.get(model_store.cache_path(config).name)

    def start(self, config: TrainConfig) -> Job:
        """The job for ``config``: the one already running or finished in this process, else a new one."""
        key = model_store.cache_path(config).name
        with self._lock:
            job = self._jobs.get(key)
            if job and job.status in ("running", "done"):
                return job
            job = Job(config)
            job.thread = threading.Thread(target=self._run, args=(job,), name=f"train-{key}", daemon=True)
            self._jobs[key] = job
            job.thread.start()
            return job

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Cancel every running job and wait (``timeout`` seconds in all) while each saves its state after its current
        step. The app calls this when its server shuts down (Ctrl-C, SIGTERM, a redeploy), so no training is lost:
        the next request for the same configuration continues the run (``lib.train.resume``)."""
        with self._lock:
            running = [job for job in self._jobs.values() if job.status == "running"]
        for job in running:
            job.cancel.set()
        deadline = time.monotonic() + timeout
        for job in running:
            job.thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, job: Job) -> None:
        try:
            train_set, test_set = self._load_data()
            device = self._device or default_device()
            run = self._train_with_oom_retry(job, train_set, test_set, device)
            info = run_info(run, train_set, device)
            model_store.store(run, info)
            job.trained = replace(run, info=info)  # what later sessions load from the cache, without reading it back
            job.status = "done"
        except InterruptedError:
            job.status = "cancelled"
        except resume.TrainedElsewhere as err:  # another process won the race to start it: nothing to trace
            job.error, job.status = str(err), "failed"
        except Exception as err:  # reported to the page; the app keeps running
            job.error = f"{type(err).__name__}: {err}"
            job.status = "failed"
            traceback.print_exc()

    def _train_with_oom_retry(self, job: Job, train_set, test_set, device) -> TrainedRun:
        """Run the job's config; on CUDA out-of-memory, say so and retry at half the batch size (down to 16)."""
        config = job.config
        while True:
            try:
                return run_training(config, train_set, test_set, device,
                                    on_progress=lambda p: setattr(job, "progress", p),
                                    should_stop=job.cancel.is_set)
            except torch.OutOfMemoryError:
                if config.batch_size <= 16:
                    raise
                torch.cuda.empty_cache()
                config = replace(config, batch_size=config.batch_size // 2)
                job.error = f"GPU out of memory: retrying at batch size {config.batch_size}."

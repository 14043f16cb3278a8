"""Faults a shared host meets: the GPU running out of memory mid-training, and a training run that fails outright."""

from __future__ import annotations

import threading

import torch

from lib.train import runs
from lib.train.data import Digits
from lib.train.runs import TrainingJobs
from lib.train.training import TrainConfig


def _digits(n: int = 64) -> Digits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    return Digits(images, torch.arange(n) % 10, "mnist", "test digits")


def _wait(job, seconds: float = 120.0):
    job.thread.join(seconds)
    assert not job.thread.is_alive(), "training thread did not finish"


def test_cuda_oom_is_reported_and_retried_at_half_the_batch(monkeypatch, isolated_cache):
    """The first attempt raises CUDA OOM; the job says so and succeeds at batch 32 → 16, and stores that config."""
    real = runs.run_training
    seen_batches = []

    def flaky(config, *args, **kwargs):
        seen_batches.append(config.batch_size)
        if len(seen_batches) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(runs, "run_training", flaky)
    data = _digits()
    jobs = TrainingJobs(lambda: (data, data), device=torch.device("cpu"))
    config = TrainConfig.spec("denoiser", hidden=4, epochs=1, batch_size=32, steps_per_epoch=2)
    job = jobs.start(config)
    _wait(job)
    assert job.status == "done", job.error
    assert seen_batches == [32, 16]
    assert "out of memory" in job.error and "16" in job.error
    assert job.trained.config.batch_size == 16
    assert len(job.trained.losses) == 2
    assert list(isolated_cache.glob("denoiser-*.safetensors")), "the finished run is cached"


def test_a_failing_run_is_reported_and_can_be_started_again(monkeypatch, isolated_cache):
    calls = []

    def broken(config, *args, **kwargs):
        calls.append(threading.current_thread().name)
        raise RuntimeError("disk full")

    monkeypatch.setattr(runs, "run_training", broken)
    data = _digits()
    jobs = TrainingJobs(lambda: (data, data), device=torch.device("cpu"))
    config = TrainConfig.spec("denoiser", hidden=4, epochs=1, batch_size=16, steps_per_epoch=1)
    first = jobs.start(config)
    _wait(first)
    assert first.status == "failed" and "disk full" in first.error
    second = jobs.start(config)  # a failed job is not handed out again: a new attempt starts
    _wait(second)
    assert second is not first and len(calls) == 2

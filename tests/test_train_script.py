"""scripts/train_models.py as a user runs it: Ctrl-C (SIGINT) or SIGTERM stops a run after its current step and
saves its state, and the same command run again continues from there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import torch

from lib.train import cache
from lib.train.resume import TRAINED_ELSEWHERE, being_trained, saved_step
from tests.conftest import ROOT

# The time-conditioned DDPM in epochs of one step (each one reported), sampled at stride 299 for its grids: seconds.
ARGS = ["--model", "time", "--steps-per-epoch", "1", "--sample-stride", "299", "--threads", "1"]


def signal_at_step(command: list[str], env: dict, signum: int, step: int) -> tuple[list[str], int]:
    """Run ``command``, send it ``signum`` once it has reported training step ``step`` or a later one, return its
    output lines and exit code."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, sent = [], False
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if not sent and ": step " in line and reported_steps(lines)[-1] >= step:
                proc.send_signal(signum)
                sent = True
        return lines, proc.wait(timeout=120)
    finally:
        proc.kill()


def reported_steps(lines: list[str]) -> list[int]:
    """The training steps the script reported, in order."""
    return [int(ln.split(": step ")[1].split("/")[0]) for ln in lines if ": step " in ln]


def test_a_stopped_run_saves_its_state_and_the_same_command_continues_it(mnist_root, tmp_path):
    env = dict(os.environ, DIFFUSION_LAB_MNIST_ROOT=str(mnist_root), DIFFUSION_LAB_CACHE=str(tmp_path / "cache"),
               DIFFUSION_LAB_PRECISION="fp32")
    command = [sys.executable, "scripts/train_models.py", *ARGS, "--out", str(tmp_path / "models")]

    lines, code = signal_at_step(command, env, signal.SIGINT, step=2)
    assert code == 130, "\n".join(lines)
    (state,) = (tmp_path / "cache").glob("time-*.resume.safetensors")
    first_stop = saved_step(state)
    assert first_stop >= reported_steps(lines)[-1] >= 2
    # the time left counts the sample grids once one has been timed, and says so before
    assert all(re.search(r"loss \d\.\d{4} \(\d+ s, about \d+ (s|min) left"
                         r"( for training \+ \d+ sample grids? \(timed on the first one\))?\)$", ln)
               for ln in lines if ": step " in ln), lines
    assert f"time: stopped at step {first_stop}; its state is saved in {state}" in lines[-1]
    assert not (tmp_path / "models").exists()

    lines, code = signal_at_step(command, env, signal.SIGTERM, step=first_stop + 1)
    assert code == 130, "\n".join(lines)
    assert f"time: continuing the run saved in {state}" in lines
    # it went on from the saved step (it may first finish that step's epoch, whose end it reports), not from step 1
    assert min(reported_steps(lines)) >= first_stop
    assert saved_step(state) > first_stop
    assert "SIGTERM: stopping after the current step" in "\n".join(lines)


def test_a_second_trainer_of_a_run_is_refused_and_a_killed_one_leaves_no_lock(mnist_root, tmp_path):
    """Two scripts (or the script and the app) on one machine do not train one run twice: the second is refused while
    the first holds the run's lock — here the first is paused mid-run (SIGSTOP), which keeps it — and a trainer
    killed outright (SIGKILL: nothing of it runs again) holds nothing any more."""
    env = dict(os.environ, DIFFUSION_LAB_MNIST_ROOT=str(mnist_root), DIFFUSION_LAB_CACHE=str(tmp_path / "cache"),
               DIFFUSION_LAB_PRECISION="fp32")
    command = [sys.executable, "scripts/train_models.py", *ARGS, "--out", str(tmp_path / "models")]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in first.stdout:
            if ": step " in line:
                first.send_signal(signal.SIGSTOP)
                break
        (lock,) = (tmp_path / "cache").glob("time-*.resume.safetensors.lock")
        state = lock.with_name(lock.name.removesuffix(".lock"))
        assert being_trained(state)

        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"time: not started. {TRAINED_ELSEWHERE}" in second.stdout.splitlines()
        assert not (tmp_path / "models").exists()
    finally:
        first.kill()
        first.wait(timeout=60)
    assert not being_trained(state)


def test_a_flow_run_is_saved_whole_with_its_provenance(mnist_root, tmp_path):
    """The constant-lr class flow run at a sweep's learning rate, in epochs of one step and grids of one Euler step."""
    from lib.train import model_store

    env = dict(os.environ, DIFFUSION_LAB_MNIST_ROOT=str(mnist_root), DIFFUSION_LAB_CACHE=str(tmp_path / "cache"))
    args = ["--model", "flow_class_constant_lr", "--lr", "2e-3", "--steps-per-epoch", "1", "--sample-stride", "300",
            "--threads", "1", "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path / "models")]
    done = subprocess.run([sys.executable, "scripts/train_models.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    path = tmp_path / "models" / "flow_class_constant_lr.safetensors"
    assert re.search(rf"^saved {re.escape(str(path))} \(\d+\.\d MB\) in \d+ s on CPU \(1 thread\), fp32; loss \d\.\d{{4}}",
                     done.stdout, re.M), done.stdout
    run = model_store.load_run(path)
    assert run.config == model_store.shipped_run_config("flow_class_constant_lr", lr=2e-3, steps_per_epoch=1,
                                                        sample_stride=300, dataset="mnist")
    assert run.config.constant_lr and not run.config.decays_lr()
    assert run.info["command"] == "python scripts/train_models.py " + " ".join(args)
    assert run.info["precision"] == "fp32" and run.info["device"] == "CPU (1 thread)" and run.info["seconds"] > 0
    assert len(run.losses) == 10 and sorted(run.snapshots) == [1, 5, 10]
    assert all(grid.shape == (40, 28, 28) and grid.dtype == torch.uint8 for grid in run.snapshots.values())
    assert run.ema is not None
    tensors, _ = cache.load_entry(path)
    assert {v.dtype for k, v in tensors.items() if k.startswith(("model.", "ema.")) and v.is_floating_point()} == {
        torch.float16}
    assert not list((tmp_path / "cache").glob("*.resume.safetensors")), "a finished run leaves no saved state"

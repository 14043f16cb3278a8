"""scripts/train_models.py as a user runs it: Ctrl-C (SIGINT) or SIGTERM stops a run after its current step and
saves its state, and the same command run again continues from there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from lib.resume import saved_step
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

"""What every benchmark prints and needs: the run's provenance, the MNIST files, timing that respects CUDA's asynchrony.

A benchmark prints, per workload, the project's figure, a baseline measured in the same run on the same machine, and
their ratio, under a header with the date, the device and the exact command — so a line of ``bench/RESULTS.md`` can be
traced back to a run anyone can repeat.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/x.py` from anywhere imports the project's lib

import torch  # noqa: E402

# the canonical raw MNIST files (never copied into the repo); DIFFUSION_LAB_MNIST_RAW points elsewhere (a GPU machine)
SHARED_RAW = Path(os.environ.get("DIFFUSION_LAB_MNIST_RAW") or ROOT.parent / "shared" / "data" / "MNIST" / "raw")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a fast smoke run (fewer steps/repeats; figures are noisy)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply --threads, check --device, print the header; returns the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda asked for, but torch sees no CUDA device here.")
    print_header(device)
    return device


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_label(device: torch.device) -> str:
    cpu = f"{cpu_model()}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (host: {cpu})"
    return f"CPU: {cpu}"


def print_header(device: torch.device) -> None:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"date:    {now}")
    print(f"device:  {device_label(device)}")
    print(f"torch:   {torch.__version__} (python {platform.python_version()})")
    print(f"command: python {shlex.join(sys.argv)}  (cwd {Path.cwd()})")
    if hasattr(os, "getloadavg"):  # other work on the machine skews every figure: say how busy it was
        print(f"load:    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15-min load average, {os.cpu_count()} CPUs)")
    print(flush=True)


def built(factory, dtype: torch.dtype, device: torch.device | str = "cpu"):
    """``factory()`` with random weights (seed 0) initialised directly in ``dtype`` on ``device``, in eval mode: a
    real-size model never exists in fp32 (IF-I-XL: 17 GB) on its way to bf16 or fp16."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(device):
            return factory().eval()
    finally:
        torch.set_default_dtype(before)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn()``, each bracketed by a device sync."""
    out = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - start)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def report(workload: str, unit: str, project: float, baseline: float, *, higher_is_better: bool,
           target: str = "", met: bool | None = None) -> float:
    """Print one result line; the ratio is always 'how many times better the project is than the baseline'."""
    ratio = project / baseline if higher_is_better else baseline / project
    better = "faster" if unit in ("img/s", "s", "ms", "ms/step", "s/step") else "better"
    line = f"RESULT {workload}: project {project:.4g} {unit} | baseline {baseline:.4g} {unit} | ratio {ratio:.2f}× {better}"
    if target:
        line += f" | target {target}: {'MET' if met else 'NOT MET'}"
    print(line, flush=True)
    return ratio


def mnist_root() -> Path:
    """A writable torchvision root holding copies of the canonical raw MNIST files (under the system temp folder)."""
    from lib.train.data import import_raw_files

    if not SHARED_RAW.exists():
        sys.exit(f"canonical MNIST files not found at {SHARED_RAW}")
    return import_raw_files(SHARED_RAW, Path(tempfile.gettempdir()) / "diffusion-lab-bench-mnist")


def digit_judge(quick: bool):
    """The app's digit classifier (``lib.train.digit_classifier``) trained here — on every training digit for two
    epochs, or 2,000 digits for one with ``--quick`` — with its reading of the real test digits printed (the ceiling
    for any model's samples); returns it and the test digits."""
    from lib.train.data import load_mnist
    from lib.train.digit_classifier import JUDGE_DIGITS, JUDGE_EPOCHS, real_digits_quality, train_digit_classifier

    train_digits, test_digits = (load_mnist(split, root=mnist_root()) for split in (True, False))
    digits, epochs = (2000, 1) if quick else (JUDGE_DIGITS, JUDGE_EPOCHS)
    judge = train_digit_classifier(train_digits, digits, epochs)
    real = real_digits_quality(judge, test_digits)
    print(f"judge: the app's digit classifier on {min(digits, len(train_digits)):,} training digits, {epochs} "
          f"epoch(s); real test digits: {real.agrees:.1%} read correctly, {real.confident:.1%} confidently")
    return judge, test_digits

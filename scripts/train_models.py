"""Train part-B models with the project's own training code and save them as shipped checkpoints.

Each shipped run (``lib.train.model_store.SHIPPED_RUNS``) is saved as OUT/<name>.safetensors, weights in fp16, with its
configuration and provenance (command, device, precision, seconds, data) in the header and its per-step losses and
per-epoch grids inside. Runs: the DDPM edition's denoiser, time, class; the flow edition's pure_noise, flow_time,
flow_class and flow_class_constant_lr (B 2.6: flow_class without ExponentialLR, at a constant --lr). Groups: ddpm, flow,
all.

Examples
  # the spec's full runs (GPU recommended), on full MNIST (downloaded into data/ when online):
  python scripts/train_models.py --model all
  # offline, from a folder holding torchvision's raw MNIST .gz files:
  python scripts/train_models.py --model class --mnist-raw ../shared/data/MNIST/raw --steps-per-epoch 50 --sample-stride 10
  # one candidate of the constant-learning-rate sweep, into a folder of its own:
  python scripts/train_models.py --model flow_class_constant_lr --lr 2e-3 --out data/sweep/lr-2e-3 --device cuda

Ctrl-C (or SIGTERM) stops a run after its current step and saves its state; the same command run again continues
from there (a second Ctrl-C quits at once, losing the steps since the last periodic save).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lib.train import model_store  # noqa: E402
from lib.train.data import import_raw_files, load_mnist, mnist_root  # noqa: E402
from lib.train.precision import PRECISIONS, default_device  # noqa: E402
from lib.train.resume import TrainedElsewhere, saved_step  # noqa: E402
from lib.train.runs import run_info, run_training  # noqa: E402
from lib.media.text import time_left  # noqa: E402

GROUPS = {"ddpm": ["class", "denoiser", "time"],
          "flow": ["pure_noise", "flow_time", "flow_class", "flow_class_constant_lr"],
          "all": list(model_store.SHIPPED_RUNS)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", choices=[*model_store.SHIPPED_RUNS, *GROUPS], default=["all"],
                   help="shipped runs or groups to train, one after the other")
    p.add_argument("--mnist-raw", help="folder with torchvision's raw MNIST .gz files, copied into data/MNIST/raw")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="short epochs of this many batches (default: full)")
    p.add_argument("--sample-stride", type=int, default=1, help="sampler stride for the per-epoch grids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate instead of the run's (a sweep's candidate)")
    p.add_argument("--out", type=Path, default=model_store.SHIPPED_DIR)
    p.add_argument("--device", default=None, help="cuda, cpu, … (default: the CUDA GPU if there is one)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp32 or bf16 autocast (default: $DIFFUSION_LAB_PRECISION, else bf16 where it is fast)")
    p.add_argument("--compile", action="store_true",
                   help="run the training forward through torch.compile (≈ 1.3× a step in a CPU probe, after a minute)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = p.parse_args()
    stop = stop_on_signals()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mnist_raw:
        import_raw_files(args.mnist_raw, mnist_root())
    train_set, test_set = load_mnist(True), load_mnist(False)
    print(train_set.note, test_set.note, flush=True)
    device = torch.device(args.device) if args.device else default_device()
    names = list(dict.fromkeys(name for choice in args.model for name in GROUPS.get(choice, [choice])))
    lr = {} if args.lr is None else {"lr": args.lr}
    for name in names:
        config = model_store.shipped_run_config(name, seed=args.seed, dataset=train_set.source,
                                                steps_per_epoch=args.steps_per_epoch, sample_stride=args.sample_stride,
                                                **lr)
        if model_store.resume_path(config).exists():
            print(f"{name}: continuing the run saved in {model_store.resume_path(config)}", flush=True)

        printed = {0}  # steps already reported (the end of an epoch reports its last step again, with a snapshot)

        def report(progress, name=name, printed=printed, config=config):
            epoch_end = progress.step % config.epoch_length_of_run(progress.total_steps) == 0
            if progress.step not in printed and (progress.step % 25 == 0 or epoch_end):
                printed.add(progress.step)
                print(f"{name}: step {progress.step}/{progress.total_steps} loss {progress.losses[-1]:.4f} "
                      f"({progress.seconds:.0f} s, {time_left(progress)})", flush=True)

        try:
            result = run_training(config, train_set, test_set, device, on_progress=report, should_stop=stop.is_set,
                                  precision=args.precision, compile_step=args.compile)
        except TrainedElsewhere as err:
            print(f"{name}: not started. {err}", flush=True)
            sys.exit(1)
        except InterruptedError:
            path = model_store.resume_path(config)
            print(f"{name}: stopped at step {saved_step(path)}; its state is saved in {path}. Run the same command "
                  "again to continue.", flush=True)
            sys.exit(130)
        info = {**run_info(result, train_set, device), "command": "python " + " ".join(sys.argv)}
        path = model_store.save_run(result, args.out / f"{name}.safetensors", info, weights_dtype=torch.float16)
        tail = result.losses[-max(1, len(result.losses) // 10):]
        print(f"saved {path} ({path.stat().st_size / 2**20:.1f} MB) in {info['seconds']:.0f} s on {info['device']}, "
              f"{info['precision']}; loss {sum(tail) / len(tail):.4f} (mean of the last 10 % of steps)", flush=True)


def stop_on_signals() -> threading.Event:
    """An event that the first SIGINT or SIGTERM sets (training stops after its current step and saves its state);
    a second one quits at once."""
    stop = threading.Event()

    def handle(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name}: stopping after the current step and saving the run's state "
              "(again to quit now)", flush=True)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    return stop


if __name__ == "__main__":
    main()

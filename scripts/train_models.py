"""Train part-B models with the project's own training code and save them as shipped checkpoints.

Examples
  # the spec's full runs (GPU recommended), on full MNIST (downloaded into data/ when online):
  python scripts/train_models.py --model all
  # offline, from a folder holding torchvision's raw MNIST .gz files:
  python scripts/train_models.py --model class --mnist-raw ../shared/data/MNIST/raw --steps-per-epoch 50 --sample-stride 10
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lib import model_store  # noqa: E402
from lib.data import DEFAULT_ROOT, import_raw_files, load_mnist  # noqa: E402
from lib.runs import run_training  # noqa: E402
from lib.training import TrainConfig, default_device  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["denoiser", "time", "class", "all"], default="all")
    p.add_argument("--mnist-raw", help="folder with torchvision's raw MNIST .gz files, copied into data/MNIST/raw")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="short epochs of this many batches (default: full)")
    p.add_argument("--sample-stride", type=int, default=1, help="sampler stride for the per-epoch grids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=model_store.SHIPPED_DIR)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mnist_raw:
        import_raw_files(args.mnist_raw, DEFAULT_ROOT)
    train_set, test_set = load_mnist(True), load_mnist(False)
    print(train_set.note, test_set.note, flush=True)
    device = default_device()
    kinds = ["class", "denoiser", "time"] if args.model == "all" else [args.model]
    for kind in kinds:
        config = TrainConfig.spec(kind, seed=args.seed, dataset=train_set.source, steps_per_epoch=args.steps_per_epoch,
                                  sample_stride=args.sample_stride)
        if model_store.resume_path(config).exists():
            print(f"{kind}: continuing the run saved in {model_store.resume_path(config)}", flush=True)

        printed = {0}  # steps already reported (the end of an epoch reports its last step again, with a snapshot)

        def report(progress, kind=kind, printed=printed):
            if progress.step not in printed and (progress.step % 25 == 0 or progress.step == progress.total_steps):
                printed.add(progress.step)
                print(f"{kind}: step {progress.step}/{progress.total_steps} loss {progress.losses[-1]:.4f} "
                      f"({progress.seconds:.0f} s)", flush=True)

        result = run_training(config, train_set, test_set, device, on_progress=report)
        info = {"seconds": round(result.seconds, 1), "device": torch.cuda.get_device_name() if device.type == "cuda"
                else f"CPU ({torch.get_num_threads()} threads)", "precision": result.precision, "data": train_set.note,
                "command": "python " + " ".join(sys.argv), "torch": torch.__version__}
        if result.resumed_at:
            info["resumed_at_steps"] = result.resumed_at
        path = model_store.save_run(result, args.out / f"{kind}.safetensors", info, weights_dtype=torch.float16)
        print(f"saved {path} ({path.stat().st_size / 2**20:.1f} MB) in {result.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()

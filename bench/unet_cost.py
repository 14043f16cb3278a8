"""What the better time-only UNet costs to train against the spec's UNet, per image, at the same D and batch.

For each time-only model (``time``, ``flow_time``): img/s of ``lib.train.training.train`` (as ``train_throughput.py``
times it, bf16 where the hardware has bf16 units) on the spec's UNet and on the ``AttentionTimeUNet`` with the better
recipe's time features (``model_store.SHIPPED_RUNS``), both at the better recipe's D and batch, interleaved. Their
ratio is the architecture's cost factor that the pages' training-time estimate uses
(``lib.train.training.ARCHITECTURE_COST``: the estimate scales the spec's benchmarked throughput by it and by (D / 64)²).

Run:  python bench/unet_cost.py --threads 2 [--quick] [--device cuda]
"""

from __future__ import annotations

from dataclasses import replace

from common import median, mnist_root, parser, setup
from train_throughput import project_throughput

from lib.train import model_store  # noqa: E402  (common puts the repo on sys.path first)
from lib.train.data import load_mnist  # noqa: E402
from lib.train.training import ARCHITECTURE_COST  # noqa: E402


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 12; 3 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="measurements of each (median; default 3, 1 with --quick)")
    args = p.parse_args()
    device = setup(args)
    warmup, steps = 2, args.steps or (3 if args.quick else 12)
    repeats = args.repeats or (1 if args.quick else 3)
    digits = load_mnist(True, root=mnist_root())
    images01, labels = digits.as_float(), digits.labels
    for spec_run, better_run in model_store.BETTER_RUNS.items():
        better = replace(model_store.shipped_run_config(better_run), epochs=1, steps_per_epoch=warmup + steps,
                         snapshot_epochs=())
        spec = replace(better, architecture="spec", time_features=0)
        rates = {"spec": [], "better": []}
        for _ in range(repeats):  # interleaved, so a slow patch of the machine hits both
            for which, config in (("spec", spec), ("better", better)):
                rates[which].append(project_throughput(config, images01, labels, device, warmup, None))
        spec_rate, better_rate = median(rates["spec"]), median(rates["better"])
        print(f"RESULT {spec_run} (D={better.hidden}, batch {better.batch_size}): spec UNet {spec_rate:.1f} img/s | "
              f"{better.architecture} UNet {better_rate:.1f} img/s | cost {spec_rate / better_rate:.2f}× the spec's "
              f"(ARCHITECTURE_COST holds {ARCHITECTURE_COST[better.architecture]:.2f})", flush=True)


if __name__ == "__main__":
    main()

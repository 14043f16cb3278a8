"""Part-B sampling: the B3 page's 10 × 4 class-conditioned grid with CFG γ = 5, strided vs the full chain, with quality.

Project: ``lib.backends.mnist_model.class_grid`` (what the page calls) on the shipped class model, at the page's default grid
stride (``ui.training.results.GRID_STRIDE``: 10 — T = 300 → 30 denoising steps — or 30 on a CPU without bf16 units), each
step one batched call of 80 = 40 images × {cond, uncond}, at the app's precision (``lib.train.precision``: bf16 autocast
where the hardware has it).
Baseline: the same grid along the spec's full 300-step chain (stride 1), eager fp32.
Target: ≤ 5 s for the strided grid on the 2-core CPU.

Quality beside speed: a small CNN digit classifier is trained here on 10,000 MNIST training digits (two epochs, a few
seconds on the CPU; its accuracy on 2,000 test digits is printed) and classifies every sample; the figure is the
fraction of the 40 samples recognised as the digit they were asked for, for the strided grid and the full chain.
With random weights (no shipped model yet) the timing still holds but the quality figure means nothing — it says so.

Run:  python bench/sampling.py [--quick] [--device cuda] [--model data/models/class.safetensors] [--stride 10]
"""

from __future__ import annotations

import os
from pathlib import Path

from common import ROOT, median, mnist_root, parser, report, setup, timed

import torch  # noqa: E402
from torch import nn  # noqa: E402

from lib.train.data import load_mnist  # noqa: E402
from lib.backends.mnist_model import MnistDDPM, class_grid  # noqa: E402
from lib.train.model_store import load_run, shipped_path  # noqa: E402
from lib.train.precision import ENV_VAR, resolve  # noqa: E402
from lib.train.training import TrainConfig  # noqa: E402
from lib.train.unets import build_model  # noqa: E402
from ui.training.results import GRID_STRIDE  # noqa: E402  (the B3 page's default stride for the 40-digit grid)

GRID_TARGET_S = 5.0


def digit_classifier(train_digits, test_digits, n_train: int, epochs: int, device) -> tuple[nn.Module, float]:
    """A two-conv CNN trained on the first ``n_train`` training digits; returns it and its test accuracy."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x, y = train_digits.as_float(device)[:n_train], train_digits.labels[:n_train].to(device)
    for _ in range(epochs):
        for idx in torch.randperm(n_train, device=device).split(100):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    xt, yt = test_digits.as_float(device)[:2000], test_digits.labels[:2000].to(device)
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    return net, acc


def fraction_correct(net: nn.Module, samples: torch.Tensor, per_class: int) -> float:
    """Share of the samples (in [−1, 1], ordered 0,0,…,1,1,…) that the classifier labels as the requested digit."""
    wanted = torch.arange(10, device=samples.device).repeat_interleave(per_class)
    with torch.no_grad():
        got = net(((samples + 1) / 2).clamp(0, 1)).argmax(1)
    return (got == wanted).float().mean().item()


def load_denoiser(path: Path, device) -> tuple[MnistDDPM, bool]:
    """The trained class model at ``path`` (via lib.train.model_store.load_run), or a random-weight D = 64 one if absent."""
    if path.exists():
        run = load_run(path, device)
        print(f"model: {path} ({run.config.model}, D = {run.config.hidden}, {len(run.losses)} training steps; "
              f"{run.info.get('device', '?')}, {run.info.get('seconds', '?')} s)")
        return MnistDDPM(run.model, run.config, device), True
    config = TrainConfig.spec("class")
    torch.manual_seed(0)
    print(f"model: {path} does not exist — a randomly initialised ClassConditionalUNet(64) (timing does not depend on "
          "the weights; quality figures are meaningless)")
    return MnistDDPM(build_model("class", config.hidden), config, device), False


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", type=Path, default=shipped_path("class"), help="a saved class-model run")
    p.add_argument("--stride", type=int, default=GRID_STRIDE, help=f"the strided grid's stride (page default here: {GRID_STRIDE})")
    p.add_argument("--scale", type=float, default=5.0, help="CFG scale γ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int, default=None, help="samples per digit (default 4; 1 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timings of the strided grid (median; default 3)")
    args = p.parse_args()
    device = setup(args)
    per_class = args.per_class or (1 if args.quick else 4)
    repeats = args.repeats or (1 if args.quick else 3)
    den, trained = load_denoiser(args.model if args.model.is_absolute() else ROOT / args.model, device)
    print(f"project precision: {resolve(device)}; baseline: fp32")

    samples: dict[int, torch.Tensor] = {}  # stride -> the grid of its last timed run (same seed: same images)

    def grid(stride: int) -> None:
        samples[stride] = class_grid(den, per_class, args.scale, stride, args.seed)

    steps = len(den.timesteps(args.stride)) - 1
    if not args.quick:
        grid(args.stride)  # warm-up (allocator, kernels)
    strided_s = timed(lambda: grid(args.stride), device, repeats)
    os.environ[ENV_VAR] = "fp32"  # the baseline: plain fp32
    full_s = timed(lambda: grid(1), device, 1)
    n = 10 * per_class
    print(f"grid: {n} samples (10 digits × {per_class}), CFG γ = {args.scale:g}, seed {args.seed}; strided runs "
          f"{', '.join(f'{s:.2f}' for s in strided_s)} s; full chain {full_s[0]:.2f} s")
    report(f"sampling {n}-image class grid, stride {args.stride} ({steps} steps) vs stride 1 "
           f"({den.config.num_timesteps} steps)", "s", median(strided_s), full_s[0], higher_is_better=False,
           target=f"≤ {GRID_TARGET_S:g} s", met=median(strided_s) <= GRID_TARGET_S)
    print(f"  per denoising step: {median(strided_s) / steps * 1000:.1f} ms strided, "
          f"{full_s[0] / den.config.num_timesteps * 1000:.1f} ms full chain")

    train_digits, test_digits = (load_mnist(split, root=mnist_root()) for split in (True, False))
    net, acc = digit_classifier(train_digits, test_digits, 2000 if args.quick else 10000, 1 if args.quick else 2,
                                device)
    print(f"\nclassifier: small CNN on {2000 if args.quick else 10000} MNIST training digits, "
          f"test accuracy {acc:.3f} on 2,000 test digits")
    q_strided = fraction_correct(net, samples[args.stride], per_class)
    q_full = fraction_correct(net, samples[1], per_class)
    label = "" if trained else "  [RANDOM WEIGHTS: meaningless]"
    print(f"RESULT quality (samples classified as the requested digit): stride {args.stride} {q_strided:.3f} | "
          f"stride 1 {q_full:.3f} | classifier test accuracy {acc:.3f}{label}", flush=True)


if __name__ == "__main__":
    main()

"""Part-B training throughput (images/s): the project's ``lib.train.training.train`` vs the course-style loop.

Workloads (the spec's configurations, ``TrainConfig.spec``; any key of ``SPEC``):
  class       class-conditioned UNet, D = 64, batch 128, Adam lr 1e-3 (B2.3 — the same per-step cost as the time model)
  denoiser    single-step denoiser UNet, D = 128, batch 256, Adam lr 1e-4 (B1.2)
  flow_class  the flow edition's class-conditioned UNet, D = 64, batch 64, Adam lr 1e-2 (B2.5; flow_time: B2.2)
  pure_noise  the flow edition's B1.2.3: the denoiser's UNet mapping pure noise to digits (its per-step cost)

Project: ``lib.train.training.train`` exactly as the app and scripts/train_models.py call it — MNIST resident on the device
as one tensor, a randperm per pass, fresh noise / t / class dropout per batch, bf16 autocast on channels_last where the
hardware has bf16 units (``--precision``), fused Adam on CUDA — run for one short epoch of ``warmup + timed`` steps
(``steps_per_epoch``); the clock runs between loss read-backs (see ``project_throughput``). The end-of-run snapshot is
outside the timed window.

Baseline, written here: the straightforward course notebook loop — ``torchvision.datasets.MNIST(root,
transform=ToTensor())`` through ``DataLoader(batch_size, shuffle=True)`` (no workers), fp32 eager, the same model,
optimiser and loss, fresh noise per step and ``loss.item()`` per step, timed over the same numbers of steps.

Run:  python bench/train_throughput.py [--quick] [--device cuda] [--models class,denoiser] [--threads N] [--precision fp32]
"""

from __future__ import annotations

import time

from common import median, mnist_root, parser, report, setup, sync

import torch  # noqa: E402  (common puts the repo on sys.path first)
import torch.nn.functional as F  # noqa: E402

from lib.train.data import load_mnist  # noqa: E402
from lib.ddpm.schedules import linear_schedule  # noqa: E402
from lib.train.precision import PRECISIONS, resolve  # noqa: E402
from lib.train.training import FLOWS, SPEC, TrainConfig, train  # noqa: E402
from lib.train.unets import build_model  # noqa: E402


def project_throughput(config: TrainConfig, images01, labels, device, warmup: int, precision: str | None) -> float:
    """img/s of ``lib.train.training.train`` between the first loss read-back at or after ``warmup`` steps and the last one.

    ``train`` calls ``on_progress`` after each read-back of the losses (every step on a CPU, every
    ``LOSS_SYNC_EVERY`` steps on CUDA) and a read-back waits for the device, so these timestamps are synchronised.
    """
    stamps: list[tuple[int, float]] = []

    def on_progress(progress):
        if not stamps or stamps[-1][0] < progress.step:  # the end-of-run snapshot reports the same step again
            stamps.append((progress.step, time.perf_counter()))

    def no_snapshot(model, epoch, step_done):  # called after the timed window; the app's snapshot sampler is not being measured
        return torch.zeros(0, 28, 28, dtype=torch.uint8)

    train(config, images01, labels, snapshot_fn=no_snapshot, device=device, on_progress=on_progress,
          precision=precision)
    first = next(i for i, (step, _) in enumerate(stamps) if step >= warmup)
    (s0, t0), (s1, t1) = stamps[first], stamps[-1]
    if s1 == s0:
        raise SystemExit("too few steps between loss read-backs to time: raise --steps")
    return (s1 - s0) * config.batch_size / (t1 - t0)


def baseline_throughput(config: TrainConfig, root, device, warmup: int, timed: int) -> float:
    """img/s of the course-style DataLoader loop over the steps after ``warmup``."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(config.seed)
    dataset = datasets.MNIST(str(root), train=True, download=True, transform=transforms.ToTensor())  # files present: no network
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True)
    model = build_model(config.model, config.hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    abar = linear_schedule(config.num_timesteps, config.beta_start, config.beta_end).alphas_cumprod.to(device).float()
    model.train()
    losses, start, done = [], 0.0, 0
    while done < warmup + timed:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            noise = torch.randn_like(x)
            if config.model == "denoiser":
                loss = F.mse_loss(model(x + config.sigma * noise), x)
            elif config.model == "pure_noise":
                loss = F.mse_loss(model(noise), x)
            elif config.model in FLOWS:  # x_t = (1 − t)·x₀ + t·x₁, x₀ the noise, x₁ the digit; target x₁ − x₀
                t = torch.rand(x.shape[0], device=device)
                x_t = (1 - t.view(-1, 1, 1, 1)) * noise + t.view(-1, 1, 1, 1) * x
                inputs = [x_t, t]
                if config.model == "flow_class":
                    keep = (torch.rand(x.shape[0], 1, device=device) >= config.p_uncond).float()
                    inputs.append(F.one_hot(y, 10).float() * keep)
                loss = F.mse_loss(model(*inputs), x - noise)
            else:
                x0 = 2 * x - 1
                t = torch.randint(0, config.num_timesteps, (x.shape[0],), device=device)
                a = abar[t].view(-1, 1, 1, 1)
                x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
                if config.model == "time":
                    pred = model(x_t, t.float() / config.num_timesteps)
                else:
                    c = F.one_hot(y, 10).float()
                    c = c * (torch.rand(x.shape[0], 1, device=device) >= config.p_uncond).float()
                    pred = model(x_t, t.float() / config.num_timesteps, c)
                loss = F.mse_loss(pred, noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            done += 1
            if done == warmup:
                sync(device)
                start = time.perf_counter()
            if done == warmup + timed:
                break
    sync(device)
    return timed * config.batch_size / (time.perf_counter() - start)


def loader_only_throughput(root, batch_size: int, batches: int) -> float:
    """img/s the baseline's input pipeline alone delivers (ToTensor per digit, collate, shuffle): the ceiling of the
    course loop on a GPU fast enough that the model step costs nothing."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(str(root), train=True, download=True, transform=transforms.ToTensor())
    it = iter(DataLoader(dataset, batch_size=batch_size, shuffle=True))
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", default="class,denoiser", help=f"comma-separated, of: {', '.join(SPEC)}")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; 1 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 3 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="measurements of each (median; default 2, 1 with --quick)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the project's precision (default auto: bf16 where the hardware has bf16 units)")
    args = p.parse_args()
    device = setup(args)
    warmup = args.warmup or (1 if args.quick else 2)
    steps = args.steps or (3 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 2)
    root = mnist_root()
    digits = load_mnist(True, root=root)  # the .gz files are there, so torchvision only unpacks them
    if digits.source != "mnist":
        raise SystemExit(f"expected the full MNIST training split, got: {digits.note}")
    images01, labels = digits.as_float(), digits.labels
    print(f"data: {digits.note} warm-up {warmup} steps, timed {steps} steps, {repeats} repeat(s), median reported")
    print(f"project precision: {resolve(device, args.precision)} (baseline: fp32)\n")

    print(f"input pipeline alone (torchvision MNIST + ToTensor + DataLoader, batch 128, no workers): "
          f"{loader_only_throughput(root, 128, 20 if args.quick else 100):.0f} img/s\n")
    for kind in args.models.split(","):
        config = TrainConfig.spec(kind, epochs=1, steps_per_epoch=warmup + steps, snapshot_epochs=())
        proj, base = [], []
        for _ in range(repeats):  # interleaved, so a slow patch of the machine hits both
            proj.append(project_throughput(config, images01, labels, device, warmup, args.precision))
            base.append(baseline_throughput(config, root, device, warmup, steps))
            print(f"  {kind}: project {proj[-1]:.1f} img/s, baseline {base[-1]:.1f} img/s", flush=True)
        report(f"train {kind} (D={config.hidden}, batch {config.batch_size}, Adam lr {config.lr:g})", "img/s",
               median(proj), median(base), higher_is_better=True)


if __name__ == "__main__":
    main()

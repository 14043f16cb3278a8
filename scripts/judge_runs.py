"""Judge the trained part-B runs — the flow edition's, and both editions' time-only models beside their better
recipes — and pick the constant learning rate of B 2.6 ("get rid of the scheduler") from a sweep, with the calibrated
digit classifier of the tests (tests/conftest.py's calibrated_judge).

For every run found — OUT_MODELS/<name>.safetensors for each name of ``SHIPPED`` and the sweep's
SWEEP/*/flow_class_constant_lr.safetensors — it records the final loss (mean of the last 10 % of steps), the time and
device, and, for the spec's weights and their EMA:
  flow_class (and every constant-lr run): the share of 100 samples per digit (γ = 5, 300 Euler steps) that the judge
      reads as the requested digit, and the share it reads confidently (max probability ≥ 0.9);
  flow_time and flow_time_beyond_spec, time and time_beyond_spec: the confident share of 1,000 samples drawn as the
      pages draw them to be judged (``lib.train.judged_samples``: 50 steps, Euler's, or for a recipe that samples
      stochastically the path's ancestral step at its η, ``model_store.sampler_eta`` of the file's name; the DDPM's
      stride 10, 30 of its 300 steps; --stride does not apply), and how far the share of each digit the judge reads
      strays from MNIST's (the largest gap, in percentage points);
  pure_noise: how far its outputs for 1,000 fresh noises are from the mean training digit (MSE), next to the loss's
      optimum under MSE, the digits' variance around that mean.
With --pick, the constant-lr run with the highest requested-digit share of its spec weights wins (shares within one
percentage point count as equal; then the lower final loss wins), and its file becomes
OUT_MODELS/flow_class_constant_lr.safetensors. Everything is printed and written to --report as JSON.

  python scripts/judge_runs.py --models data/models --sweep data/sweep --pick --report judge.json --device cuda
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lib.backends.mnist_model import MnistDDPM  # noqa: E402
from lib.train import model_store  # noqa: E402
from lib.train.data import import_raw_files, load_mnist, mnist_root  # noqa: E402
from lib.flow.mnist import GUIDANCE_SCALE, MnistFlow, class_grid, step_size  # noqa: E402
from lib.train.judged_samples import judged_samples  # noqa: E402
from lib.train.precision import default_device, infer  # noqa: E402
from lib.train.digit_classifier import digit_shares, label_shares, largest_share_gap  # noqa: E402
from tests.digit_classifier import confident_share, read_digits, train_digit_classifier  # noqa: E402

SHIPPED = ("pure_noise", "flow_time", "flow_class", "flow_class_constant_lr", "flow_time_beyond_spec", "time",
           "time_beyond_spec")
NO_SCHEDULER = "flow_class_constant_lr"


def final_loss(losses: list[float]) -> float:
    tail = losses[-max(1, len(losses) // 10):]
    return sum(tail) / len(tail)


def as_judged(images01: torch.Tensor) -> torch.Tensor:
    """The flow models draw in [0, 1]; the judge reads [−1, 1] (as the DDPMs draw)."""
    return images01.cpu() * 2 - 1


def judge_run(path: Path, judge, mean_digit: torch.Tensor, digits_var: float, mnist_shares: torch.Tensor, args,
              device) -> dict:
    run = model_store.load_run(path, device)
    c = run.config
    row = {"file": str(path), "model": c.model, "lr": c.lr, "constant_lr": c.constant_lr, "seed": c.seed,
           "steps": len(run.losses), "final_loss": final_loss(run.losses), "seconds": run.info.get("seconds"),
           "device": run.info.get("device"), "precision": run.info.get("precision"),
           "sampler_eta": model_store.sampler_eta(path.stem)}
    for weights in ("spec", "ema"):
        if weights == "ema" and run.ema is None:
            continue
        net = run.network(weights)
        if c.model == "pure_noise":
            noise = torch.randn((10 * args.samples, 1, 28, 28), generator=torch.Generator().manual_seed(0))
            out = infer(net, noise.to(device)).cpu()
            row["mse_to_mean_digit"] = F.mse_loss(out, mean_digit.expand_as(out)).item()
            row["optimum_loss"] = digits_var
            continue
        if c.model == "flow_class":
            x = as_judged(class_grid(MnistFlow(net, c), args.samples, GUIDANCE_SCALE, step_size(c.model, args.stride),
                                     seed=0))
            asked = torch.arange(10).repeat_interleave(args.samples)
            row[f"{weights}_requested_digit"] = (read_digits(judge, x) == asked).float().mean().item()
            row[f"{weights}_confident"] = confident_share(judge, x)
            continue
        model = MnistDDPM(net, c) if c.model == "time" else MnistFlow(net, c)
        x = judged_samples(model, 10 * args.samples, eta=row["sampler_eta"]).cpu()
        shares = digit_shares(judge, x)
        row[f"{weights}_confident"] = confident_share(judge, x)
        row[f"{weights}_digit_shares"] = shares.tolist()
        row[f"{weights}_largest_gap_points"] = largest_share_gap(shares, mnist_shares)[0]
    return row


def pick(rows: list[dict]) -> dict:
    """The constant-lr run to ship: the highest requested-digit share of the spec weights, in whole percentage points,
    then the lowest final loss."""
    return min(rows, key=lambda r: (-round(100 * r["spec_requested_digit"]), r["final_loss"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=model_store.SHIPPED_DIR, help="folder of the shipped runs")
    p.add_argument("--sweep", type=Path, default=None, help="folder of the sweep's candidates (one folder each)")
    p.add_argument("--pick", action="store_true", help=f"ship the best constant-lr run as {NO_SCHEDULER}")
    p.add_argument("--report", type=Path, default=None, help="write the rows as JSON here")
    p.add_argument("--mnist-raw", help="folder with torchvision's raw MNIST .gz files, copied into data/MNIST/raw")
    p.add_argument("--device", default=None)
    p.add_argument("--samples", type=int, default=100, help="samples per digit (the time model and pure noise: ×10)")
    p.add_argument("--stride", type=int, default=1, help="Euler step stride (1: the spec's 50 / 300 steps)")
    p.add_argument("--judge-digits", type=int, default=60000, help="training digits of the judge (calibrated: 60,000)")
    p.add_argument("--judge-epochs", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    if args.mnist_raw:
        import_raw_files(args.mnist_raw, mnist_root())
    train_set, test_set = load_mnist(True), load_mnist(False)
    if train_set.source != "mnist":
        raise SystemExit(f"real MNIST is needed to judge: {train_set.note}")
    judge = train_digit_classifier(train_set, test_set, digits=args.judge_digits, epochs=args.judge_epochs)
    real = confident_share(judge, test_set.as_float()[:2000] * 2 - 1)
    print(f"judge: {args.judge_digits} digits × {args.judge_epochs} epochs, reads {real:.1%} of real test digits "
          "confidently", flush=True)
    digits = train_set.as_float()
    mean_digit = digits.mean(0, keepdim=True)
    digits_var = F.mse_loss(digits, mean_digit.expand_as(digits)).item()

    paths = [args.models / f"{name}.safetensors" for name in SHIPPED if (args.models / f"{name}.safetensors").exists()]
    if args.sweep and args.sweep.exists():
        paths += sorted(args.sweep.glob(f"*/{NO_SCHEDULER}.safetensors"))
    rows = []
    for path in paths:
        rows.append(judge_run(path, judge, mean_digit, digits_var, label_shares(train_set.labels), args, device))
        print(json.dumps(rows[-1]), flush=True)
    report = {"judge_confident_on_real_digits": real, "rows": rows}
    candidates = [r for r in rows if r["model"] == "flow_class" and r["constant_lr"]]
    if args.pick and candidates:
        best = pick(candidates)
        target = args.models / f"{NO_SCHEDULER}.safetensors"
        if Path(best["file"]) != target:
            shutil.copyfile(best["file"], target)
        report["picked"] = {**best, "shipped_as": str(target)}
        print(f"picked lr {best['lr']:g} ({best['spec_requested_digit']:.1%} requested digit, final loss "
              f"{best['final_loss']:.4f}) → {target}", flush=True)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""What limits the time-only flow model's samples (issue #24 item 7): its sampler, or its network? Probes, measured with
the app's digit judge on the same noises (seed 0):

  Euler (the spec's sampler, the app's: ``lib.flow.mnist.unconditional_grid``) — the baseline;
  ancestral — the flow path's own DDPM sampler, the app's at noise η = 1 (``lib.flow.euler.ancestral_step``): from t_a
      to t_b it draws x_b from the posterior q(x_b | x_a, x̂₁) of x_t = t x₁ + (1 − t) ε, i.e.
      x_b = t_b x̂₁ + √((1 − t_b)² − s²) ε̂ + s z with ε̂ = x_a − t_a v̂ (the noise the prediction implies) and z fresh;
  re-noised — s = 1 − t_b: ε̂ thrown away and x̂₁ noised afresh at every step (what a consistency model's multistep
      sampler does): more confident digits, drawn from a narrower distribution;
  given the digit — the shipped class-conditioned flow model (the same UNet with the digit's embedding), digits drawn
      in MNIST's proportions, no guidance (γ = 1): how confident the UNet's samples are once the digit is decided.

For each, the share read confidently and the largest gap of the digit mix to MNIST's. The re-noising sampler is a
probe written here, not one the app offers. Prints a markdown table for bench/RESULTS.md.

Run:  python bench/time_only_limits.py [--quick] [--threads 2] [--samples 1000] [--run data/models/flow_time.safetensors]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import digit_judge, mnist_root, parser, setup

from lib.ddpm.sampling import randn  # noqa: E402
from lib.flow.euler import euler_times, sample  # noqa: E402
from lib.flow.mnist import MnistFlow, step_size, unconditional_grid  # noqa: E402
from lib.flow.path import one_step_estimate  # noqa: E402
from lib.train import model_store  # noqa: E402
from lib.train.data import load_mnist  # noqa: E402
from lib.train.digit_classifier import confident_share, digit_shares, label_shares, largest_share_gap  # noqa: E402

STEPS = 50  # the spec's Euler steps for the time model (h = 0.02), for every probe


def renoised_sample(flow: MnistFlow, n: int, seed: int) -> torch.Tensor:
    """``n`` samples in [0, 1] by the re-noising step x_b = t_b x̂₁ + (1 − t_b) z, ``STEPS`` steps."""
    gen = torch.Generator(device=flow.device).manual_seed(seed)
    x = randn((n, *flow.image_shape), gen, device=flow.device, dtype=flow.dtype)
    times = euler_times(0.0, steps=STEPS)
    with torch.no_grad():
        for a, b in zip(times[:-1], times[1:]):
            x1 = one_step_estimate(x, a, flow.velocity(x, a, flow.null_condition()))
            x = b * x1 + (1 - b) * randn(x.shape, gen, like=x)
    return x


def with_digits_given(n: int, seed: int, mnist: torch.Tensor) -> torch.Tensor:
    """``n`` samples in [0, 1] of the shipped class flow model's EMA, digits drawn in MNIST's proportions, γ = 1."""
    run = model_store.load_run(model_store.shipped_path("flow_class"))
    flow = MnistFlow(run.network("ema"), run.config)
    gen = torch.Generator().manual_seed(seed)
    digits = torch.multinomial(mnist, n, replacement=True, generator=gen)
    return sample(flow, F.one_hot(digits, 10).float(), scale=1.0, num_samples=n, generator=gen, steps=STEPS)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--run", type=Path, default=model_store.shipped_path("flow_time"), help="a time-only flow run")
    args = p.parse_args()
    setup(args)
    n = 100 if args.quick else args.samples
    judge, _ = digit_judge(args.quick)
    mnist = label_shares(load_mnist(True, root=mnist_root()).labels)
    run = model_store.load_run(args.run)
    flow = MnistFlow(run.network("ema"), run.config)
    probes = {
        "Euler (the spec's)": lambda: unconditional_grid(flow, n, step_size("flow_time"), seed=0),
        "ancestral (η = 1)": lambda: unconditional_grid(flow, n, step_size("flow_time"), seed=0, eta=1.0),
        "re-noised": lambda: renoised_sample(flow, n, 0),
        "given the digit (class model, γ = 1)": lambda: with_digits_given(n, 0, mnist),
    }
    print(f"\n{args.run.name} (EMA), {n} samples, {STEPS} steps, seed 0\n")
    print("| sampler | confident | largest gap to MNIST's mix | digit shares (%) | s |")
    print("|---|---|---|---|---|")
    for name, draw in probes.items():
        start = time.perf_counter()
        x = draw() * 2 - 1  # the judge reads [−1, 1]
        seconds = time.perf_counter() - start
        shares = digit_shares(judge, x)
        gap, digit = largest_share_gap(shares, mnist)
        print(f"| {name} | {confident_share(judge, x):.1%} | {gap:.1f} points ({digit}s) | "
              f"{' / '.join(f'{100 * s:.1f}' for s in shares.tolist())} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()

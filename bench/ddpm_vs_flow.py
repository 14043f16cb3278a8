"""DDPM and flow matching side by side (issue 24, item 5): sample quality against network evaluations (NFE) for the
shipped class-conditioned DDPM (``data/models/class.safetensors``) and flow model (``data/models/flow_class.safetensors``).

Project: ``lib.flow.ddpm_vs_flow.quality_curve`` — what the page "DDPM vs flow matching" measures — for each model:
``--per-digit`` guided samples of every digit (each spec's γ = 5) from the same starting noise at each NFE of
``NFE_COUNTS`` (the DDPM: ancestral steps along ``chain_timesteps(300, 300 / NFE)``; the flow: NFE Euler steps of
h = 1 / NFE), judged by the app's digit classifier (``lib.train.digit_classifier``: every training digit, two epochs,
trained here; its reading of the real test digits is printed as the ceiling). Prints one markdown table for
bench/RESULTS.md, the fewest NFE at which each reaches the page's target share, and each model's sampling time.

Skips (exit status 0, one line saying which file is missing) until both shipped files exist; the flow models are
trained on a GPU (scripts/train_gpu.sh).

Run:  python bench/ddpm_vs_flow.py [--quick] [--device cuda] [--per-digit 10] [--seed 0]
"""

from __future__ import annotations

import time

from common import digit_judge, parser, setup

from lib.backends.mnist_model import MnistDDPM  # noqa: E402
from lib.flow.ddpm_vs_flow import (INK_TOLERANCE, NFE_COUNTS, TARGET_AGREEMENT, DdpmContender,  # noqa: E402
                                   FlowContender, fewest_evaluations, fewest_for_finished_ink, mid_grey_share,
                                   quality_curve)
from lib.flow.mnist import MnistFlow  # noqa: E402
from lib.train.digit_classifier import TEST_DIGITS, to_classifier_range  # noqa: E402
from lib.train.model_store import load_run, shipped_path  # noqa: E402

MODELS = {"class": MnistDDPM, "flow_class": MnistFlow}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--per-digit", type=int, default=None, help="samples of each digit per NFE (default 10; 2 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="the starting noise's seed")
    args = p.parse_args()
    missing = [str(shipped_path(model)) for model in MODELS if not shipped_path(model).exists()]
    if missing:
        print(f"SKIPPED: {' and '.join(missing)} missing — the comparison needs both shipped class-conditioned models "
              "(the flow models are trained on a GPU: scripts/train_gpu.sh).")
        return
    device = setup(args)
    per_digit = args.per_digit or (2 if args.quick else 10)
    contenders = []
    for model, adapter in MODELS.items():
        run = load_run(shipped_path(model), device)
        print(f"model: {shipped_path(model).name} (D = {run.config.hidden}, {len(run.losses):,} training steps; "
              f"{run.info.get('device', '?')})")
        contender_type = DdpmContender if model == "class" else FlowContender
        contenders.append(contender_type(adapter(run.model, run.config, device)))

    judge, test_digits = digit_judge(args.quick)
    real_grey = mid_grey_share(to_classifier_range(test_digits.as_float()[:TEST_DIGITS], (0.0, 1.0)))
    print(f"real test digits: {real_grey:.1%} of their pixels mid-grey\n")

    curves, seconds = {}, {}
    for contender in contenders:
        start = time.perf_counter()
        curves[contender.name] = quality_curve(contender, judge, per_digit, NFE_COUNTS, args.seed)
        seconds[contender.name] = time.perf_counter() - start
    names = list(curves)
    print(f"{10 * per_digit} samples per cell (10 digits × {per_digit}), seed {args.seed}; "
          "share read as the asked digit / share read confidently / mid-grey pixels\n")
    print("| NFE | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, nfe in enumerate(NFE_COUNTS):
        cells = [f"{curves[n][i].quality.agrees:.0%} / {curves[n][i].quality.confident:.0%} / "
                 f"{curves[n][i].mid_grey:.1%}" for n in names]
        print(f"| {nfe} | " + " | ".join(cells) + " |")
    print()
    for name in names:
        fewest = fewest_evaluations(curves[name], TARGET_AGREEMENT)
        reached = (f"reaches ≥ {TARGET_AGREEMENT:.0%} read as asked at {fewest} NFE" if fewest is not None else
                   f"does not reach {TARGET_AGREEMENT:.0%} read as asked within {max(NFE_COUNTS)} NFE")
        inked = fewest_for_finished_ink(curves[name], real_grey)
        ink = (f"its ink is within {INK_TOLERANCE:g}× real digits' mid-grey share at {inked} NFE" if inked is not None
               else f"its ink is not within {INK_TOLERANCE:g}× real digits' mid-grey share at {max(NFE_COUNTS)} NFE")
        print(f"RESULT {name} {reached}; {ink}; all {sum(NFE_COUNTS)} NFE sampled in {seconds[name]:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()

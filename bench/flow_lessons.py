"""The flow edition's part-A lesson defaults on MNIST (issue #25 item 3), measured on the shipped class-conditioned flow
model (``data/models/flow_class.safetensors``, its EMA weights: what the flow pages run on) with the app's digit judge
(``lib.train.digit_classifier``: every training digit, two epochs), as bench/RESULTS.md §8 measured the DDPM's:

  guidance (1.6 / 2.1): ``--per-digit`` samples of every digit at each course weight w of v_c + w (v_c − v_u), h = 0.02
      — the share read as the asked digit and the share read confidently;
  anagrams (3.3): pairs × views, ``--samples`` each — read as prompt 1 as generated, as prompt 2 under the view, both;
  hybrids (3.4): pairs × σ (the course's σ 16 at 512 px scales to 0.875 at 28 px) × w — read as a person sees them
      (as the DDPM's A7 table): *far* the hybrid ``seen_small`` (2σ times further away, enlarged back to 28 px for the
      judge), *near* the whole image.

Every cell starts from the same noises (seed 180, the pages' default). Prints markdown tables for bench/RESULTS.md.

Run:  python bench/flow_lessons.py [--quick] [--threads 2] [--samples 16] [--per-digit 8]
"""

from __future__ import annotations

import itertools
import time

import torch
import torch.nn.functional as F
from common import digit_judge, parser, setup

from lib.flow.euler import euler, sample, scale_from_course_w  # noqa: E402
from lib.flow.mnist import MnistFlow  # noqa: E402
from lib.ddpm.sampling import randn  # noqa: E402
from lib.techniques.anagrams import anagram_velocity  # noqa: E402
from lib.techniques.filters import seen_small, two_band  # noqa: E402
from lib.techniques.hybrids import factorized_velocity, lowpass_scaled_to  # noqa: E402
from lib.techniques.views import VIEWS  # noqa: E402
from lib.train.digit_classifier import CONFIDENT, probabilities, to_classifier_range  # noqa: E402
from lib.train.model_store import load_run, shipped_path  # noqa: E402

SEED = 180  # the pages' default seed
H = 0.02  # the course's Euler step
GUIDANCE_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 7.0)
ANAGRAMS = [("6", "9", "rotate 180°"), ("9", "6", "rotate 180°"), ("2", "5", "mirror left–right"),
            ("2", "5", "rotate 180°"), ("1", "7", "mirror left–right"), ("6", "9", "flip upside down")]
HYBRID_PAIRS = [("0", "5"), ("6", "2"), ("4", "5"), ("0", "6")]
HYBRID_SIGMAS = (0.875, 1.5, 2.0, 2.5)
WEIGHTS_FOR_EDITS = (4.0, 7.0)


def noise(flow: MnistFlow, n: int) -> torch.Tensor:
    return randn((n, *flow.image_shape), torch.Generator().manual_seed(SEED), device=flow.device, dtype=flow.dtype)


def reads(judge, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(digits read, confident?) for images in the flow model's [0, 1]."""
    p = probabilities(judge, to_classifier_range(images01.float().cpu(), (0.0, 1.0)))
    best, digit = p.max(1)
    return digit, best >= CONFIDENT


def guidance_table(flow: MnistFlow, judge, per_digit: int) -> None:
    print(f"\n### Guidance w (v_c + w (v_c − v_u)), {per_digit} samples of each digit, h = {H}, seed {SEED}\n")
    print("| w | read as asked | confident |\n|---|---|---|")
    asked = torch.arange(10).repeat_interleave(per_digit)
    for w in GUIDANCE_WEIGHTS:
        x = torch.cat([sample(flow, flow.encode_prompt(str(d)), scale=scale_from_course_w(w), num_samples=per_digit,
                              generator=torch.Generator().manual_seed(SEED), h=H) for d in range(10)])
        digit, confident = reads(judge, x)
        print(f"| {w:g} | {(digit == asked).float().mean():.0%} | {confident.float().mean():.0%} |", flush=True)


def anagram_table(flow: MnistFlow, judge, n: int) -> None:
    print(f"\n### Anagrams (w₁ = w₂ = ½), {n} samples each, h = {H}, seed {SEED}: read as prompt 1 / as prompt 2 under "
          "the view / both\n")
    print("| prompt 1 | prompt 2 | view | " + " | ".join(f"w = {w:g}" for w in WEIGHTS_FOR_EDITS) + " |")
    print("|---|---|---|" + "---|" * len(WEIGHTS_FOR_EDITS))
    for first, second, view in ANAGRAMS:
        cells = []
        for w in WEIGHTS_FOR_EDITS:
            predict = anagram_velocity(flow, [flow.encode_prompt(first), flow.encode_prompt(second)],
                                       [VIEWS["identity"], VIEWS[view]], (0.5, 0.5), scale_from_course_w(w))
            x = euler(noise(flow, n), 0.0, H, predict)
            upright = reads(judge, x)[0] == int(first)
            viewed = reads(judge, VIEWS[view].apply(x))[0] == int(second)
            cells.append(f"{int(upright.sum())} / {int(viewed.sum())} / **{int((upright & viewed).sum())}**")
        print(f"| {first} | {second} | {view} | " + " | ".join(cells) + " |", flush=True)


def hybrid_table(flow: MnistFlow, judge, n: int) -> None:
    print(f"\n### Hybrids, {n} samples each, h = {H}, seed {SEED}: far (seen small) / near (whole image) / both\n")
    columns = list(itertools.product(HYBRID_SIGMAS, WEIGHTS_FOR_EDITS))
    print("| far | near | " + " | ".join(f"σ {s:g}, w {w:g}" for s, w in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for far, near in HYBRID_PAIRS:
        cells = []
        for sigma, w in columns:
            kernel = lowpass_scaled_to(flow.image_shape[-1])[0]  # the course's taps (15 at 28 px), any σ
            predict = factorized_velocity(flow, [flow.encode_prompt(far), flow.encode_prompt(near)],
                                          two_band(kernel, sigma), scale_from_course_w(w))
            x = euler(noise(flow, n), 0.0, H, predict)
            small = F.interpolate(seen_small(x, sigma), size=x.shape[-2:], mode="bilinear", align_corners=False)
            from_far = reads(judge, small)[0] == int(far)
            up_close = reads(judge, x)[0] == int(near)
            cells.append(f"{int(from_far.sum())} / {int(up_close.sum())} / **{int((from_far & up_close).sum())}**")
        print(f"| {far} | {near} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--samples", type=int, default=None, help="anagrams and hybrids per cell (default 16; 4 --quick)")
    p.add_argument("--per-digit", type=int, default=None, help="guided samples of each digit (default 8; 2 --quick)")
    args = p.parse_args()
    device = setup(args)
    n = args.samples or (4 if args.quick else 16)
    per_digit = args.per_digit or (2 if args.quick else 8)
    path = shipped_path("flow_class")
    if not path.exists():
        print(f"SKIPPED: {path} missing (scripts/train_models.py --model flow_class).")
        return
    run = load_run(path, device)
    flow = MnistFlow(run.network(run.sampling_weights), run.config, device)
    print(f"model: {path.name}, {run.sampling_weights} weights (D = {run.config.hidden}, {len(run.losses):,} steps)")
    judge, _ = digit_judge(args.quick)
    for table, arg in ((guidance_table, per_digit), (anagram_table, n), (hybrid_table, n)):
        start = time.perf_counter()
        table(flow, judge, arg)
        print(f"\n({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

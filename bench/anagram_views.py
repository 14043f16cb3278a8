"""A6 on MNIST: which views find anagrams on the shipped class model, judged by the tests' digit classifier.

For every view of ``lib.techniques.views.VIEWS`` (identity aside) and ``--pairs`` ordered digit pairs (p₁, p₂) drawn
with seed 0, ``--samples`` anagrams at the page's defaults (w = ½, γ and stride of the MNIST family, seed 180) are
sampled; an anagram *reads right* when the classifier (``tests/digit_classifier.py``, ≈ 97 % on real test digits) reads
the image as p₁ and its view as p₂ (chance: 1 %). Printed per view: the share reading right over all pairs, and the
best pair's share. A view whose best pair stays near chance finds no anagram on this model: that is what
``ui.sections.anagrams.DEFAULTS["mnist"].views_that_fail`` lists.

Run:  python bench/anagram_views.py [--pairs 12] [--samples 8] [--threads 1] [--views 'pixel permutation' …]
"""

from __future__ import annotations

from common import mnist_root, parser, setup

import torch  # noqa: E402

from lib.backends.mnist_model import MnistDDPM  # noqa: E402
from lib.ddpm.sampling import sample_with  # noqa: E402
from lib.techniques.anagrams import anagram_predictor  # noqa: E402
from lib.techniques.views import VIEWS  # noqa: E402
from lib.train.data import load_mnist  # noqa: E402
from lib.train.model_store import load_run, shipped_path  # noqa: E402
from tests.digit_classifier import read_digits, train_digit_classifier  # noqa: E402
from ui.backend import DEFAULT_SEED, FAMILY_DEFAULTS  # noqa: E402


def pairs(n: int) -> list[tuple[int, int]]:
    """``n`` of the 90 ordered pairs of distinct digits, drawn with seed 0."""
    every = [(a, b) for a in range(10) for b in range(10) if a != b]
    return [every[i] for i in torch.randperm(len(every), generator=torch.Generator().manual_seed(0))[:n].tolist()]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--views", nargs="*", help="only these views (default: every view but the identity)")
    args = p.parse_args()
    setup(args)
    root = mnist_root()
    judge = train_digit_classifier(load_mnist(True, root=root, download=False), load_mnist(False, root=root,
                                                                                             download=False))
    run = load_run(shipped_path("class"))
    den = MnistDDPM(run.model, run.config)
    d = FAMILY_DEFAULTS["mnist"]
    chosen = pairs(args.pairs)
    print(f"γ {d.guidance}, stride {d.stride}, w 0.5, seed {DEFAULT_SEED}, {args.samples} samples per pair; pairs "
          f"{chosen}")
    for name, view in VIEWS.items():
        if name == "identity" or (args.views and name not in args.views):
            continue
        shares = []
        for first, second in chosen:
            predict = anagram_predictor(den, [den.encode_prompt(str(first)), den.encode_prompt(str(second))],
                                        [VIEWS["identity"], view], [0.5, 0.5], d.guidance)
            x = sample_with(den, predict, num_samples=args.samples, stride=d.stride,
                            generator=torch.Generator().manual_seed(DEFAULT_SEED))
            both = (read_digits(judge, x) == first) & (read_digits(judge, view.apply(x)) == second)
            shares.append(both.float().mean().item())
        best = max(range(len(chosen)), key=lambda i: shares[i])
        print(f"RESULT {name}: both ways {sum(shares) / len(shares):.0%} over all pairs, best pair "
              f"{chosen[best][0]}/{chosen[best][1]} {shares[best]:.0%}", flush=True)


if __name__ == "__main__":
    main()

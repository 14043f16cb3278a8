"""A small digit classifier trained on real MNIST: the judge of "does this image read as digit d?".

It measures sample quality without anything downloaded: a two-conv CNN trained on the app's own MNIST (≈ 97 % test
accuracy after one epoch on 20,000 training digits, seconds on a CPU). Two shares of a batch of images say how good
they are:

* **confident**: the classifier gives some digit probability ≥ ``CONFIDENT`` — "looks like a digit", whichever;
* **agrees**: the digit it reads is the one the image was asked for (class-conditioned samples).

Its inputs are pixels in [−1, 1] (the DDPMs' range; ``to_classifier_range`` maps any other). The tests train it through
``tests/digit_classifier.py``; the app trains it once per training set and keeps it in the model cache
(``cached_digit_classifier``), in the content-addressed, verified format of ``lib.train.cache``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lib.train import cache
from lib.train.data import Digits
from lib.train.training import seeded_init

TRAIN_DIGITS = 20000  # the first this many training digits (all of a smaller set): the tests' quick judge
EPOCHS = 1
# The app's judge, trained once and cached: every training digit, twice (≈ 1 min on a 2-core CPU). Better calibrated
# than the quick one: it reads 97.9 % of the first 2,000 real test digits correctly and 95.4 % confidently (the quick
# one 96.5 % and 87.1 %), and 1,000 images of noise 10.4 % "correctly" (chance) and 0.9 % confidently.
JUDGE_DIGITS = 60000
JUDGE_EPOCHS = 2
BATCH = 100
LR = 2e-3
CONFIDENT = 0.9  # the probability above which a reading counts as confident
TEST_DIGITS = 2000  # test digits its accuracy is measured on


def build_classifier() -> nn.Sequential:
    """conv 5×5 (16) → ReLU → max-pool → conv 5×5 (32) → ReLU → max-pool → linear to the 10 digits' logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def train_digit_classifier(train_set: Digits, digits: int = TRAIN_DIGITS, epochs: int = EPOCHS) -> nn.Module:
    """``epochs`` of Adam (lr ``LR``, batches of ``BATCH`` in order) on the first ``digits`` training digits from initial
    weights of seed 0 (``seeded_init``: the process's global RNG is left as it was); returns the network in eval mode."""
    net = seeded_init(0, build_classifier)
    opt = torch.optim.Adam(net.parameters(), LR)
    x, y = train_set.as_float()[:digits] * 2 - 1, train_set.labels[:digits]
    for _ in range(epochs):
        for i in range(0, len(x), BATCH):
            loss = F.cross_entropy(net(x[i:i + BATCH]), y[i:i + BATCH])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def to_classifier_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Pixels in ``value_range`` mapped affinely to the classifier's [−1, 1]: 2 (x − lo) / (hi − lo) − 1 (the images
    themselves, bit for bit, when they are in [−1, 1] already)."""
    lo, hi = value_range
    if (lo, hi) == (-1.0, 1.0):
        return images
    return 2 * (images - lo) / (hi - lo) - 1


def probabilities(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """softmax of the logits (N, 10) for (N, 1, 28, 28) images in [−1, 1] (clamped there first), on the CPU."""
    with torch.no_grad():
        return classifier(images.detach().float().cpu().clamp(-1, 1)).softmax(1)


def read_digits(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The digit ``classifier`` reads in each of the (N, 1, 28, 28) images (in [−1, 1])."""
    return probabilities(classifier, images).argmax(1)


def confident_share(classifier: nn.Module, images: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """The share of the images (in [−1, 1]) that ``classifier`` reads as some digit with probability ≥ ``threshold``
    — "looks like a digit" without saying which (the time-conditioned models are asked for none)."""
    return (probabilities(classifier, images).max(1).values >= threshold).float().mean().item()


def digit_shares(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The share of the (N, 1, 28, 28) images (in [−1, 1]) that ``classifier`` reads as each digit 0–9: (10,), sums
    to 1 — how often an unconditional model draws each digit, to set beside ``label_shares`` of its training set."""
    return label_shares(read_digits(classifier, images))


def label_shares(labels: torch.Tensor) -> torch.Tensor:
    """The share of each digit 0–9 among ``labels`` (N,): (10,), sums to 1."""
    return torch.bincount(labels.cpu(), minlength=10).float() / len(labels)


def largest_share_gap(shares: torch.Tensor, reference: torch.Tensor) -> tuple[float, int]:
    """How far a digit mix strays from ``reference`` (both (10,) shares): the largest |share − reference| in
    percentage points, and the digit where it is."""
    gaps = (shares - reference).abs() * 100
    return gaps.max().item(), int(gaps.argmax())


@dataclass(frozen=True)
class Quality:
    """How a batch of class-conditioned images reads: the share read confidently, the share read as the asked digit."""

    confident: float
    agrees: float


def quality(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Quality:
    """``Quality`` of (N, 1, 28, 28) images in [−1, 1] asked to be the digits ``labels`` (N,)."""
    p = probabilities(classifier, images)
    return Quality(confident=(p.max(1).values >= CONFIDENT).float().mean().item(),
                   agrees=(p.argmax(1) == labels.cpu()).float().mean().item())


def real_digits_quality(classifier: nn.Module, test_set: Digits, n: int = TEST_DIGITS) -> Quality:
    """``quality`` of the first ``n`` real test digits with their true labels: the ceiling a model's samples are
    measured against (``agrees`` is the classifier's test accuracy)."""
    return quality(classifier, test_set.as_float()[:n] * 2 - 1, test_set.labels[:n])


@dataclass(frozen=True)
class ClassifierConfig:
    """What determines a trained classifier; its JSON is the cache key."""

    digits: int
    epochs: int
    dataset: str  # Digits.source of the training set
    num_train: int  # the training set's size (the offline fallback has fewer digits than MNIST)

    def path(self, folder: Path) -> Path:
        return Path(folder) / f"digit_classifier-{cache.config_key(asdict(self))}.safetensors"


def cached_digit_classifier(train_set: Digits, folder: Path, digits: int = JUDGE_DIGITS,
                            epochs: int = JUDGE_EPOCHS) -> nn.Module:
    """The classifier of ``train_set``: loaded from ``folder`` when it was trained before, else trained now and saved
    there (atomically, with a digest; a damaged file is retrained and rewritten, never loaded)."""
    config = ClassifierConfig(min(digits, len(train_set)), epochs, train_set.source, len(train_set))
    path = config.path(folder)
    try:
        tensors, _ = cache.load_entry(path)
        net = build_classifier()
        net.load_state_dict(cache.unnest("model", tensors))
        return net.eval()
    except (FileNotFoundError, cache.CorruptEntry, KeyError, RuntimeError):
        pass
    net = train_digit_classifier(train_set, config.digits, epochs)
    cache.save_entry(path, cache.nest("model", net.state_dict()), {"config": json.dumps(asdict(config), sort_keys=True)})
    return net

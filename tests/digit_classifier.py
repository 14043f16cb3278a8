"""A small digit classifier trained on real MNIST: the judge of tests that ask "does this image read as digit d?"

Cheap on purpose (≈ 97 % test accuracy after one epoch on 20,000 digits, a few seconds on a CPU); tests get it through
the session-scoped ``digit_classifier`` fixture of ``tests/conftest.py``, so it is trained once per test run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TRAIN_DIGITS = 20000
BATCH = 100
MIN_ACCURACY = 0.95


def train_digit_classifier(mnist_train, mnist_test, digits: int = TRAIN_DIGITS, epochs: int = 1) -> nn.Module:
    """A two-conv CNN, ``epochs`` of Adam on the first ``digits`` training digits (in order), inputs in [−1, 1] (as the
    models draw them); asserts ≥ 95 % accuracy on 2,000 test digits, so a weak judge fails loudly instead of passing bad
    images."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    x, y = mnist_train.as_float()[:digits] * 2 - 1, mnist_train.labels[:digits]
    for _ in range(epochs):
        for i in range(0, len(x), BATCH):
            loss = F.cross_entropy(net(x[i:i + BATCH]), y[i:i + BATCH])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(mnist_test.as_float()[:2000] * 2 - 1).argmax(1) == mnist_test.labels[:2000]).float().mean()
    assert acc > MIN_ACCURACY, f"the judging classifier itself is too weak ({acc:.2f})"
    return net


def read_digits(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The digit ``classifier`` reads in each of the (N, 1, 28, 28) images (clamped to [−1, 1] first)."""
    with torch.no_grad():
        return classifier(images.float().clamp(-1, 1)).argmax(1)


def confident_share(classifier: nn.Module, images: torch.Tensor, threshold: float = 0.9) -> float:
    """The share of the (N, 1, 28, 28) images (in [−1, 1]) that ``classifier`` reads as some digit with probability
    ≥ ``threshold`` — "looks like a digit" without saying which (the time-conditioned model is asked for none)."""
    with torch.no_grad():
        probabilities = classifier(images.float().clamp(-1, 1)).softmax(1)
    return (probabilities.max(1).values >= threshold).float().mean().item()

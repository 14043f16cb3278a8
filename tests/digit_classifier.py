"""The judge of tests that ask "does this image read as digit d?": ``lib.train.digit_classifier``'s small CNN, held to a
minimum accuracy so that a weak judge fails loudly instead of passing bad images.

Tests get it through the session-scoped ``digit_classifier`` fixture of ``tests/conftest.py``, so it is trained once per
test run.
"""

from __future__ import annotations

from torch import nn

from lib.train.digit_classifier import (EPOCHS, TEST_DIGITS, TRAIN_DIGITS, confident_share, read_digits,
                                        real_digits_quality, train_digit_classifier as train)

__all__ = ["confident_share", "read_digits", "train_digit_classifier"]

MIN_ACCURACY = 0.95


def train_digit_classifier(mnist_train, mnist_test, digits: int = TRAIN_DIGITS, epochs: int = EPOCHS) -> nn.Module:
    """The classifier trained on the first ``digits`` training digits for ``epochs``; asserts ≥ 95 % accuracy on the
    first 2,000 test digits."""
    net = train(mnist_train, digits, epochs)
    accuracy = real_digits_quality(net, mnist_test, TEST_DIGITS).agrees
    assert accuracy > MIN_ACCURACY, f"the judging classifier itself is too weak ({accuracy:.2f})"
    return net

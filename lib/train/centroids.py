"""Average digits: the mean training image — the centroid that B 1.2.3's pure-noise denoiser converges to — and one
per class, which make a simple, fully transparent reader of digits (nearest class centroid).

Under the MSE loss ‖D(ε) − x‖² with an input ε independent of the digit x, the best output for every ε is E[x], the
mean of the training digits: the loss is E‖D(ε) − x̄‖² + E‖x − x̄‖², minimal at D ≡ x̄. The nearest-centroid reader
assigns an image the class whose mean image is closest in squared distance; it is weak (about 80 % of real MNIST test
digits) but computed from the data alone, with no training, so its reading of generated digits is honest to state
beside its reading of real ones.
"""

from __future__ import annotations

import torch

from lib.train.data import Digits


def mean_image(images: torch.Tensor) -> torch.Tensor:
    """The pixel-wise mean x̄ of (N, 1, 28, 28) images: (1, 28, 28)."""
    return images.float().mean(dim=0)


def class_means(digits: Digits) -> torch.Tensor:
    """The mean image of each digit 0–9 of ``digits``, in [0, 1]: (10, 1, 28, 28)."""
    x = digits.as_float()
    return torch.stack([mean_image(x[digits.labels == d]) for d in range(10)])


def per_image_mse(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean((x_i − r)²) over the pixels of each image x_i of (N, 1, 28, 28) against one (1, 28, 28) reference: (N,)."""
    return ((images.float() - reference.float()) ** 2).flatten(1).mean(dim=1)


def nearest_centroid(images: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The class of each (N, 1, 28, 28) image in [0, 1] whose centroid (10, 1, 28, 28) is nearest in squared
    distance: (N,) labels."""
    return torch.cdist(images.float().flatten(1), centroids.float().flatten(1)).argmin(dim=1)

"""The average digit: the mean training image x̄ — the centroid that B 1.2.3's pure-noise denoiser converges to — and
the per-image distance to it.

Under the MSE loss ‖D(ε) − x‖² with an input ε independent of the digit x, the best output for every ε is E[x], the
mean of the training digits: the loss is E‖D(ε) − x̄‖² + E‖x − x̄‖², minimal at D ≡ x̄.
"""

from __future__ import annotations

import torch


def mean_image(images: torch.Tensor) -> torch.Tensor:
    """The pixel-wise mean x̄ of (N, 1, 28, 28) images: (1, 28, 28)."""
    return images.float().mean(dim=0)


def per_image_mse(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """mean((x_i − r)²) over the pixels of each image x_i of (N, 1, 28, 28) against one (1, 28, 28) reference: (N,)."""
    return ((images.float() - reference.float()) ** 2).flatten(1).mean(dim=1)


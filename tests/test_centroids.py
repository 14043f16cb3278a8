"""The average digits (lib.train.centroids) and B 1.2.3's lesson measured on them (ui.sections.pure_noise.lesson)."""

from __future__ import annotations

import pytest
import torch

from lib.train.centroids import mean_image, per_image_mse
from lib.train.data import Digits
from ui.sections.pure_noise import lesson


class Constant(torch.nn.Module):
    """A "denoiser" that outputs one fixed image whatever its input."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = torch.nn.Parameter(image.clone(), requires_grad=False)

    def forward(self, x):
        return self.image.expand(x.shape[0], *self.image.shape)


@pytest.fixture(scope="module")
def few_digits() -> Digits:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 28, 28), generator=gen, dtype=torch.uint8)
    return Digits(images, torch.arange(50) % 10, "test", "random pictures")


def test_the_mean_image_is_the_pixel_average(few_digits):
    x = few_digits.as_float()
    assert mean_image(x).shape == (1, 28, 28)
    assert torch.allclose(mean_image(x), x.sum(0) / 50)


def test_per_image_mse():
    reference = torch.full((1, 28, 28), 0.5)
    images = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28), torch.full((1, 28, 28), 0.75)])
    assert per_image_mse(images, reference).tolist() == pytest.approx([0.25, 0.25, 0.0625])


def test_a_model_that_outputs_the_mean_image_is_at_the_centroid(few_digits):
    """The lesson's closed form: a denoiser that outputs x̄ for every noise image lies at MSE 0 from it, and its
    outputs do not differ at all; one that outputs a digit lies at that digit's distance."""
    centroid = mean_image(few_digits.as_float())
    noise = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    found = lesson(Constant(centroid), noise, centroid)
    assert found.output_mse.tolist() == [0.0] * 6 and found.spread == 0.0
    digit = few_digits.as_float()[0]
    found = lesson(Constant(digit), noise, centroid)
    assert found.output_mse.tolist() == pytest.approx([((digit - centroid) ** 2).mean().item()] * 6)

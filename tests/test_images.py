"""lib.media.images' measures against closed forms."""

from __future__ import annotations

import pytest
import torch

from lib.techniques.filters import lowpass
from lib.media.images import gradient_energy


def test_gradient_energy_of_a_ramp_and_a_checkerboard():
    """A horizontal ramp x[i, j] = a·j has every horizontal difference a and no vertical one: E = a²; a ±1
    checkerboard has every difference ±2 both ways: E = 4 + 4 = 8; a constant image has none: E = 0."""
    ramp = (0.1 * torch.arange(28.0)).expand(2, 1, 28, 28)
    yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    checkerboard = (1 - 2 * ((yy + xx) % 2)).float().view(1, 1, 28, 28)
    assert gradient_energy(ramp) == pytest.approx(0.01)
    assert gradient_energy(checkerboard) == pytest.approx(8.0)
    assert gradient_energy(torch.full((1, 1, 5, 5), 0.3)) == 0.0


def test_blurring_lowers_gradient_energy():
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert gradient_energy(lowpass(x, 9, 1.0)) < 0.5 * gradient_energy(x)


def test_signed_picture_puts_zero_at_black_and_both_signs_on_one_scale():
    """0 → black, +scale → orange, −scale → blue, half the scale → half the colour, beyond the scale clipped; a
    3-channel value is the mean of its channels."""
    from lib.media.images import SIGNED_NEGATIVE, SIGNED_POSITIVE, signed_picture, to_uint8

    x = torch.tensor([0.0, 2.0, -2.0, 1.0, 5.0]).view(1, 1, 1, 5)
    colours = (signed_picture(x, 2.0) + 1) / 2  # back to [0, 1]
    assert colours.shape == (1, 3, 1, 5)
    expected = torch.tensor([[0, 0, 0], list(SIGNED_POSITIVE), list(SIGNED_NEGATIVE),
                             [c / 2 for c in SIGNED_POSITIVE], list(SIGNED_POSITIVE)]).T
    assert torch.allclose(colours[0, :, 0], expected, atol=1e-6)
    assert to_uint8(signed_picture(torch.zeros(1, 1, 2, 2), 1.0)).max() == 0
    rgb = torch.tensor([3.0, -1.0, 1.0]).view(1, 3, 1, 1)  # mean 1
    assert torch.allclose(signed_picture(rgb, 2.0), signed_picture(torch.ones(1, 1, 1, 1), 2.0))

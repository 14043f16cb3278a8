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

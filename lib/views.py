"""Views for visual anagrams (spec 1.8): invertible pixel transforms v with v⁻¹(v(x)) = x.

For an orthogonal view (a permutation of pixels, or negation) the noise of the viewed image is the viewed noise, so
the denoiser's estimate for view i is mapped back with v_i⁻¹: ε = Σ_i w_i v_i⁻¹(ε̂(v_i(x_t), p_i)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class View:
    name: str
    apply: Transform
    inverse: Transform
    # How a predicted *variance* map is mapped back: the same pixel permutation, but never a sign flip (σ² of −x is σ²
    # of x). None = ``inverse``.
    inverse_variance: Transform | None = None

    def unview_variance(self, v: torch.Tensor) -> torch.Tensor:
        return (self.inverse_variance or self.inverse)(v)


def _flip_v(x):
    return torch.flip(x, dims=[-2])


def _flip_h(x):
    return torch.flip(x, dims=[-1])


def _rot90(x):
    return torch.rot90(x, 1, dims=(-2, -1))


def _rot270(x):
    return torch.rot90(x, -1, dims=(-2, -1))


def _rot180(x):
    return torch.rot90(x, 2, dims=(-2, -1))


def _negate(x):
    return -x


def _identity(x):
    return x


VIEWS: dict[str, View] = {
    "identity": View("identity", _identity, _identity),
    "flip upside down": View("flip upside down", _flip_v, _flip_v),
    "rotate 90°": View("rotate 90°", _rot90, _rot270),
    "rotate 180°": View("rotate 180°", _rot180, _rot180),
    "mirror left–right": View("mirror left–right", _flip_h, _flip_h),
    "negate (MNIST)": View("negate (MNIST)", _negate, _negate, _identity),
}

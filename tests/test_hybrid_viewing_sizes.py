"""A7's viewing sizes (issue 27 item 5): the same hybrids drawn small for the far reading and large for the near one
(a triple's middle band in between), side by side, so that a person sees each reading without stepping back."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lib.media.images import grid
from ui.sections.hybrids import show_viewing_sizes, viewing_sizes


def test_far_is_drawn_at_its_own_size_near_large_and_a_triples_middle_between():
    assert viewing_sizes(28, 170, 2) == [28, 170]
    assert viewing_sizes(28, 170, 3) == [28, 69, 170]  # √(28 · 170) ≈ 69
    assert viewing_sizes(64, 220, 2) == [64, 256]  # near at least 4 px a pixel


def test_the_pictures_grow_from_far_to_near_and_each_is_the_result_itself():
    backend = SimpleNamespace(size=28, defaults=SimpleNamespace(display_px=170))
    result = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pictures = show_viewing_sizes(backend, result, ("0", "5", "1"))
    widths = [p.shape[1] for p in pictures]
    assert widths == sorted(widths) and len(set(widths)) == 3, widths
    far, near = pictures[0], pictures[-1]
    assert (far == grid(result, 2, upscale=1)).all()  # far: 1 px a pixel, nothing added
    upscale = near.shape[1] // far.shape[1]
    assert upscale == 170 // 28 and (near[::upscale, ::upscale] == far).all()  # near: the same pixels, enlarged

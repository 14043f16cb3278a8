"""A7's viewing sizes (issue 27 item 5): the same hybrids as each band's viewer sees them — the far view genuinely
small (2σ times further away: each 2σ × 2σ block averaged into one pixel), the near view large, a triple's middle
band in between — side by side, so that a person sees each reading without stepping back."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lib.media.images import grid
from lib.techniques.filters import seen_small
from ui.sections.hybrids import show_viewing_sizes, viewing_pictures


def noise(n: int = 2, size: int = 28) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_seen_small_averages_each_2_sigma_block_into_one_pixel():
    x = noise()
    small = seen_small(x, 2.0)  # 28 / (2 · 2) = 7 px
    assert small.shape == (2, 1, 7, 7)
    blocks = x.reshape(2, 1, 7, 4, 7, 4).mean((3, 5))
    assert torch.allclose(small, blocks, atol=1e-6)
    assert seen_small(x, 1.5).shape[-1] == 9 and seen_small(noise(1, 64), 2.0).shape[-1] == 16  # round(28 / 3), 64 / 4
    assert seen_small(x, 50.0).shape[-1] == 4  # never below 4 px


def test_the_views_grow_from_far_to_near_and_far_is_the_result_seen_small():
    x = noise()
    views = viewing_pictures(x, (2.0, 1.0), 170)  # a triple: σ2 first (far), then σ1 (middle)
    assert [w for w, _ in views] == [14, 28, 170]  # the small ones at 2 screen px a pixel
    assert torch.equal(views[0][1], seen_small(x, 2.0)) and torch.equal(views[1][1], seen_small(x, 1.0))
    assert views[-1][1] is x
    assert viewing_pictures(noise(1, 64), (2.0,), 220)[-1][0] == 256  # near: at least 4 screen px a pixel


def test_the_pictures_drawn_are_the_small_images_at_their_own_size_and_the_result_enlarged():
    backend = SimpleNamespace(size=28, defaults=SimpleNamespace(display_px=170))
    x = noise()
    far, near = show_viewing_sizes(backend, x, ("0", "5"), (2.0,))
    assert (far == grid(seen_small(x, 2.0), 2, upscale=2)).all()  # whole blocks of 2 × 2 screen px: no detail added
    upscale = 170 // 28
    assert (near[::upscale, ::upscale] == grid(x, 2)).all()  # near: the result's own pixels, enlarged

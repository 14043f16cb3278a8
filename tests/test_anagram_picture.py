"""A6's combining-rule picture (issue 27 item 6): one size for every panel, the noise on one signed scale that the
difference of the two estimates sets, and the difference drawn where — and only where — the estimates differ."""

from __future__ import annotations

import numpy as np
import torch

from lib.media.images import SIGNED_NEGATIVE, SIGNED_POSITIVE
from lib.techniques.anagrams import AnagramStep
from ui.sections.anagrams import combining_rule


def test_combining_rule_draws_six_panels_of_one_size_and_the_difference_on_one_signed_scale():
    torch.manual_seed(0)
    noise = torch.randn(1, 1, 28, 28)
    stroke = torch.zeros(1, 1, 28, 28)
    stroke[..., 10:18, 12:16] = 0.5  # prompt 2's estimate is the same noise plus a stroke: −0.5 in the difference
    first, back = noise, noise + stroke
    x = torch.rand(1, 1, 28, 28) * 2 - 1
    step = AnagramStep(149, x, [x, torch.flip(x, dims=[-2, -1])], [first, torch.flip(back, dims=[-2, -1])],
                       [first, back], 0.5 * first + 0.5 * back)
    pictures = combining_rule(step, ["6", "9"], ["identity", "rotate 180°"], [0.5, 0.5])
    assert len(pictures) == 6 and len({p.shape for p in pictures}) == 1, [p.shape for p in pictures]
    difference = pictures[5]
    scale = pictures[0].shape[0] // 30  # the upscale: 28 px + 2 px padding per tile
    inside = difference[(2 + 14) * scale, (2 + 13) * scale]  # a pixel of the stroke
    outside = difference[(2 + 3) * scale, (2 + 3) * scale]  # where the estimates agree
    assert np.allclose(inside, np.round(255 * np.array(SIGNED_NEGATIVE)), atol=1)  # −0.5 is the full scale: blue
    assert outside.max() == 0  # no difference: black
    # ε and the estimates share the difference's scale, ±0.5: unit noise saturates in both colours
    estimate = pictures[3].reshape(-1, 3)
    assert (np.abs(estimate - np.round(255 * np.array(SIGNED_POSITIVE))).max(1) <= 1).mean() > 0.2
    assert (np.abs(estimate - np.round(255 * np.array(SIGNED_NEGATIVE))).max(1) <= 1).mean() > 0.2

"""An animation that turns an anagram from one reading to the other (spec 1.8, as people share them).

Each pixel travels from where it is to where the view puts it: v(x).flat[k] = sign · x.flat[src[k]], so the pixel at
p = src[k] goes to q = k. Its path is a straight line p + s (q − p), or for a rotation an arc about the centre through
s · turn degrees; its value goes from x to sign · x (negation fades through grey). A frame is drawn by splatting every
pixel bilinearly at its position and dividing by the weight each output pixel got; at s = 0 and s = 1 every position
is on the grid, so the first frame is the image and the last is v(image).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lib.media.images import gif_bytes, grid
from lib.techniques.views import View


def _positions(view: View, h: int, w: int, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) at time s ∈ [0, 1] of the pixels in source order: entry j is where pixel j of the image is."""
    dst = torch.argsort(view.source(h, w))  # pixel j of the image lands at dst[j]
    p = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1).double()
    q = torch.stack([dst // w, dst % w]).double()
    if not view.turn:
        return tuple((1 - s) * p + s * q)
    c = torch.tensor([(h - 1) / 2, (w - 1) / 2], dtype=torch.float64)[:, None]
    a = math.radians(view.turn * s)  # counter-clockwise on screen, where rows grow downwards
    rel = p - c
    rotated = torch.stack([math.cos(a) * rel[0] - math.sin(a) * rel[1], math.sin(a) * rel[0] + math.cos(a) * rel[1]])
    moving = (p != q).any(0)  # pixels the view leaves in place (outside an inner circle) stay put
    return tuple(torch.where(moving, rotated + c, p))


def _splat(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images whose pixel j is drawn at (rows[j], cols[j]) with bilinear weights, normalised by the weight
    each output pixel received (pixels no one lands on take the image's mean)."""
    h, w = x.shape[-2:]
    r0, c0 = rows.floor(), cols.floor()
    r = torch.cat([r0, r0, r0 + 1, r0 + 1])
    c = torch.cat([c0, c0 + 1, c0, c0 + 1])
    wgt = (1 - (rows.repeat(4) - r).abs()) * (1 - (cols.repeat(4) - c).abs())
    keep = (r >= 0) & (r < h) & (c >= 0) & (c < w) & (wgt > 0)
    src = torch.arange(h * w).repeat(4)[keep]
    dst = (r * w + c)[keep].long()
    values = x.flatten(-2).double()
    total = torch.zeros_like(values).index_add_(-1, dst, values[..., src] * wgt[keep])
    weight = torch.zeros(h * w, dtype=torch.float64).index_add_(0, dst, wgt[keep])
    out = torch.where(weight > 1e-9, total / weight.clamp(min=1e-9), values.mean(-1, keepdim=True))
    return out.view(x.shape).to(x.dtype)


def morph_frames(x: torch.Tensor, view: View, n_frames: int = 16) -> list[torch.Tensor]:
    """(N, C, H, W) frames from x to v(x), eased (s = (1 − cos πu) / 2) so each reading lingers."""
    h, w = x.shape[-2:]
    frames = []
    for u in np.linspace(0.0, 1.0, n_frames):
        s = float((1 - math.cos(math.pi * u)) / 2) if 0 < u < 1 else float(u)
        rows, cols = _positions(view, h, w, s)
        value = 1 - s + s * view.sign  # 1 → sign: negation fades through grey
        frames.append(_splat(x, rows, cols) * value)
    return frames


def anagram_gif(x: torch.Tensor, view: View, *, ncols: int, upscale: int, n_frames: int = 16) -> bytes:
    """A looping GIF: the images, turning into their view, and back (each reading held by ``gif_bytes``' pauses)."""
    pictures = [grid(f, ncols, upscale=upscale) for f in morph_frames(x, view, n_frames)]
    return gif_bytes(pictures + pictures[::-1][1:], duration_ms=80)

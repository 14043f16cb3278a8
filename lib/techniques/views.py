"""Views for visual anagrams (spec 1.8): invertible pixel transforms v with v⁻¹(v(x)) = x.

For an orthogonal view — a permutation of pixels, or negation, i.e. a signed permutation matrix P — the viewed noise
P z is again N(0, I), so the viewed noisy image P x_t = √ᾱ P x_0 + √(1 − ᾱ) P z is a noisy image the denoiser knows,
and its estimate for view i is mapped back with v_i⁻¹ = Pᵀ: ε = Σ_i w_i v_i⁻¹(ε̂(v_i(x_t), p_i)).

Every permutation view is an index map ``src`` (one per image size): v(x).flat[k] = sign · x.flat[src[k]], so a view
adapts to 28 px and 64 px by itself. ``FAILURE_VIEWS`` are invertible but not orthogonal (a blur, a colour scaling):
they change the noise's variance, so the denoiser sees an image at the wrong noise level and the anagram breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]
IndexMap = Callable[[int, int], torch.Tensor]  # (H, W) → src, a permutation of range(H·W)

SEED = 0  # the fixed seed of the random (patch, pixel) permutations


@lru_cache(maxsize=64)
def _maps(index_map: IndexMap, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The index map for an H×W image and its inverse (argsort: src⁻¹[src[k]] = k), on ``device``."""
    src = index_map(h, w)
    return src.to(device), torch.argsort(src).to(device)


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.flatten(-2)[..., index].view(x.shape)


@dataclass(frozen=True)
class View:
    """v(x) = sign · x.flat[src] — a signed permutation matrix — or, with ``apply``/``inverse`` given, any invertible
    map (the failure views, whose ``breaks`` says why they fail)."""

    name: str
    index_map: IndexMap | None = None
    sign: float = 1.0
    turn: float = 0.0  # degrees (counter-clockwise on screen) that the animation turns moving pixels by; 0 = straight
    custom: tuple[Transform, Transform] | None = field(default=None, repr=False)
    breaks: str | None = None  # why a non-orthogonal view fails

    def source(self, h: int, w: int, device=torch.device("cpu")) -> torch.Tensor:
        """src with v(x).flat[k] = sign · x.flat[src[k]]."""
        return _maps(self.index_map, h, w, torch.device(device))[0]

    def _permute(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        return _gather(x, _maps(self.index_map, x.shape[-2], x.shape[-1], x.device)[int(inverse)])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.custom:
            return self.custom[0](x)
        y = self._permute(x, inverse=False)
        return -y if self.sign < 0 else y

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        if self.custom:
            return self.custom[1](x)
        y = self._permute(x, inverse=True)
        return -y if self.sign < 0 else y

    def unview_variance(self, v: torch.Tensor) -> torch.Tensor:
        """A predicted *variance* map goes back by the same pixel permutation, never a sign flip (σ² of −x is σ² of x);
        a failure view maps it back like ε."""
        return self.custom[1](v) if self.custom else self._permute(v, inverse=True)


def _grid_map(fn: Transform) -> IndexMap:
    """The index map of a torch op that only moves pixels: the op applied to the grid of pixel indices."""
    return lambda h, w: fn(torch.arange(h * w).view(h, w)).flatten()


def _skew(h: int, w: int) -> torch.Tensor:
    """Row r shifts circularly by ⌊(r − H/2) / 2⌋ columns: a shear, exact on the grid because it wraps around."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    shift = torch.div(rows - h // 2, 2, rounding_mode="floor")
    return (rows * w + (cols - shift) % w).flatten()


def patches_per_side(size: int) -> int:
    """4 patches a side where the size allows (28 px → 7 px patches, 64 px → 16 px), else 2."""
    for n in (4, 2):
        if size % n == 0:
            return n
    raise ValueError(f"no patch size divides {size} px")


def _jigsaw(h: int, w: int) -> torch.Tensor:
    """The n×n patches in a fixed seeded order (never the identity); inside a patch the pixels keep their places."""
    n = patches_per_side(h)
    if w != h:
        raise ValueError("the patch permutation needs a square image")
    g = torch.Generator().manual_seed(SEED)
    order = torch.randperm(n * n, generator=g)
    while torch.equal(order, torch.arange(n * n)):
        order = torch.randperm(n * n, generator=g)
    p = h // n
    idx = torch.arange(h * w).view(n, p, n, p).permute(0, 2, 1, 3).reshape(n * n, p, p)  # patches, row-major
    return idx[order].view(n, n, p, p).permute(0, 2, 1, 3).flatten()


def inner_disc(h: int, w: int) -> torch.Tensor:
    """The centred disc of radius 0.4·H as a bool (H, W) mask: symmetric under quarter turns about the centre."""
    c = (h - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (rows - c) ** 2 + (cols - c) ** 2 <= (0.4 * h) ** 2


def _inner_rotate(h: int, w: int) -> torch.Tensor:
    """A quarter turn of the pixels inside the centred disc (it maps the disc onto itself), the rest stays."""
    idx = torch.arange(h * w).view(h, w)
    return torch.where(inner_disc(h, w), torch.rot90(idx, 1), idx).flatten()


def _scramble(h: int, w: int) -> torch.Tensor:
    """A fixed seeded random permutation of all pixels."""
    return torch.randperm(h * w, generator=torch.Generator().manual_seed(SEED))


def _identity_map(h: int, w: int) -> torch.Tensor:
    return torch.arange(h * w)


_ROT90 = _grid_map(lambda i: torch.rot90(i, 1))
_ROT180 = _grid_map(lambda i: torch.rot90(i, 2))
_FLIP_V = _grid_map(lambda i: torch.flip(i, dims=[0]))
_FLIP_H = _grid_map(lambda i: torch.flip(i, dims=[1]))

VIEWS: dict[str, View] = {v.name: v for v in [
    View("identity", _identity_map),
    View("flip upside down", _FLIP_V),
    View("rotate 90°", _ROT90, turn=90.0),
    View("rotate 180°", _ROT180, turn=180.0),
    View("mirror left–right", _FLIP_H),
    View("negate (MNIST)", _identity_map, sign=-1.0),
    View("skew", _skew),
    View("jigsaw (patch permutation)", _jigsaw),
    View("inner circle rotation", _inner_rotate, turn=90.0),
    View("pixel permutation", _scramble),
]}


# --- views that break: invertible, not orthogonal --------------------------------------------------------------------

BLUR_TAPS = (1 / 6, 2 / 3, 1 / 6)  # its frequency response 2/3 + cos(ω)/3 ≥ 1/3 never vanishes: exactly invertible


def _blur_response(h: int, w: int, device) -> torch.Tensor:
    """The (H, W//2+1) frequency response of the separable circular blur with ``BLUR_TAPS``."""
    a, b, _ = BLUR_TAPS
    fy = b + 2 * a * torch.cos(2 * math.pi * torch.fft.fftfreq(h, device=device))
    fx = b + 2 * a * torch.cos(2 * math.pi * torch.fft.rfftfreq(w, device=device))
    return fy[:, None] * fx[None, :]


def _blur(x: torch.Tensor, power: int) -> torch.Tensor:
    """Circular blur (power 1) or its exact inverse, deconvolution (power −1), in the Fourier domain."""
    h, w = x.shape[-2:]
    k = _blur_response(h, w, x.device) ** power
    return torch.fft.irfft2(torch.fft.rfft2(x.float()) * k, s=(h, w)).to(x.dtype)


COLOUR_SCALES = (1.5, 1.0, 0.5)  # a white-balance shift (R up, B down); a grey image is scaled by the last one


def _scales(x: torch.Tensor) -> torch.Tensor:
    s = torch.tensor(COLOUR_SCALES if x.shape[-3] == 3 else COLOUR_SCALES[-1:], dtype=x.dtype, device=x.device)
    return s.view(-1, 1, 1)


FAILURE_VIEWS: dict[str, View] = {v.name: v for v in [
    View("blur", custom=(lambda x: _blur(x, 1), lambda x: _blur(x, -1)),
         breaks="A blur averages neighbouring pixels, so it averages the noise too: the viewed noise has less than "
                "unit variance (and is correlated), which is not the noise the model was trained to remove at step t."),
    View("colour scaling", custom=(lambda x: x * _scales(x), lambda x: x / _scales(x)),
         breaks="Scaling the intensities (a white balance) scales the noise with them: its variance is no longer 1, "
                "so the model misreads the noise level of the viewed image."),
]}


def noise_variance(view: View, shape: tuple[int, ...], seed: int = SEED) -> float:
    """Var v(z) for z ~ N(0, I) of ``shape``: 1 for a signed permutation, not 1 for a view that breaks."""
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return float(view.apply(z).var())


def keeps_noise_standard(view: View, shape: tuple[int, ...], seed: int = SEED) -> bool:
    """Whether Var v(z) is 1 within 6 standard errors of a sample variance of n values (√(2/n))."""
    return abs(noise_variance(view, shape, seed) - 1.0) < 6 * math.sqrt(2 / math.prod(shape))

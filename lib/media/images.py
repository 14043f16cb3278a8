"""Converting between tensors and pictures: grids for display, PNG/GIF bytes for download, PSNR."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Floats in ``value_range`` → uint8 of the same shape on the CPU: round(255 · (x − lo) / (hi − lo)), clipped."""
    lo, hi = value_range
    x = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8)


def rescaled(x: torch.Tensor, source: tuple[float, float], target: tuple[float, float]) -> torch.Tensor:
    """Pixels in the range ``source`` mapped affinely onto ``target``: lo' + (x − lo)(hi' − lo') / (hi − lo)."""
    (lo, hi), (lo2, hi2) = source, target
    return lo2 + (x - lo) * ((hi2 - lo2) / (hi - lo))


def to_uint8_hwc(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(C, H, W) or (H, W) float tensor in ``value_range`` → (H, W[, 3]) uint8 array."""
    x = to_uint8(x, value_range)
    if x.dim() == 3:
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    return x.numpy()


def grid(images: torch.Tensor, ncols: int, value_range: tuple[float, float] = (-1.0, 1.0), pad: int = 2,
         upscale: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images (or (N, H, W) uint8) into one uint8 picture, row-major, ``pad`` px of black between."""
    if images.dtype == torch.uint8:
        images = images.float().div(255).unsqueeze(1) if images.dim() == 3 else images.float().div(255)
        value_range = (0.0, 1.0)
    n, c, h, w = images.shape
    nrows = math.ceil(n / ncols)
    out = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        tile = to_uint8_hwc(images[i], value_range)
        if tile.ndim == 2:
            tile = np.repeat(tile[:, :, None], 3, axis=2)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = tile
    if upscale > 1:
        out = out.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return out


SIGNED_POSITIVE = (1.0, 0.45, 0.0)  # orange: +scale
SIGNED_NEGATIVE = (0.0, 0.55, 1.0)  # blue: −scale


def signed_picture(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Signed (N, C, H, W) values (a noise estimate, a difference) → (N, 3, H, W) colours in [−1, 1] for ``grid``:
    v = clamp(mean over C of x / scale, −1, 1) drawn as v·orange where v > 0 and |v|·blue where v < 0, so 0 is black
    and both signs show on one scale (grey levels would put 0 at mid-grey, where no shape reads)."""
    v = (x.detach().float().cpu().mean(1, keepdim=True) / scale).clamp(-1, 1)
    positive, negative = (torch.tensor(c).view(1, 3, 1, 1) for c in (SIGNED_POSITIVE, SIGNED_NEGATIVE))
    return (v.clamp(min=0) * positive + (-v).clamp(min=0) * negative) * 2 - 1


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(frames: list[np.ndarray], duration_ms: int = 80) -> bytes:
    """An animated GIF (looping, last frame held 1 s) from uint8 frames."""
    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    durations = [duration_ms] * (len(imgs) - 1) + [1000]
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=durations, loop=0)
    return buf.getvalue()


def psnr(x: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(range² / MSE), for images in a range of width ``data_range``."""
    mse = torch.mean((x.float() - reference.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def gradient_energy(x: torch.Tensor) -> float:
    """Edge energy E = mean((x[i, j+1] − x[i, j])²) + mean((x[i+1, j] − x[i, j])²), the mean squared finite difference
    along each image axis (over the batch and channels too). A sharpness measure: blurring lowers it, and so does
    averaging many plausible images (one-step x̂₀ ≈ E[x₀ | x_t]), which is why the blurry average can win on PSNR yet
    have far less edge energy than a real image."""
    x = x.float()
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return (dx.pow(2).mean() + dy.pow(2).mean()).item()

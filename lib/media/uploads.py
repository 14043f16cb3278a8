"""Turning user uploads and canvas drawings into model inputs, defensively.

``load_image`` accepts only a few raster formats, checks size *before* decoding (the header is read lazily), turns
every decoder failure into an ``ImageError`` with a message for the user, and normalises every pixel mode to RGB
(transparency composited on white, CMYK and 16-bit converted, EXIF rotation applied, first frame of an animation).
What it changed is listed in ``image.info["notes"]``.

``to_tensor`` makes the (1, C, size, size) tensor in [−1, 1] a denoiser expects; for MNIST (C = 1) it also applies
MNIST's own preprocessing so a photo or drawing of a digit looks like the training data.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

# the one list of accepted formats: the decoder's allow-list and what every message and the uploader's label name
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # no EPS/PDF (external interpreters), no exotic codecs
FORMATS_TEXT = f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}"
MAX_SIDE = 20_000


class ImageError(ValueError):
    """An upload that cannot be used; ``str(err)`` is meant for the user."""


def _too_large(size: str, max_pixels: int) -> ImageError:
    return ImageError(f"The image is {size}; at most {max_pixels / 1e6:.0f} megapixels and {MAX_SIDE:,} pixels a side "
                      "are accepted. Downscale it first.")


def _decode(data: bytes, max_pixels: int, subject: str) -> tuple[Image.Image, list[str]]:
    """Open (the header only) and check the size before decoding. PIL's own bomb warning is silenced: our limit is
    lower and its message is raw; only beyond twice its limit does PIL refuse to even read the size."""
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.UnidentifiedImageError as err:
            raise ImageError(f"{subject} is not an image in a supported format ({FORMATS_TEXT}).") from err
        except Image.DecompressionBombError as err:
            raise _too_large(f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels", max_pixels) from err
        w, h = im.size
        if w < 1 or h < 1 or w * h > max_pixels or max(w, h) > MAX_SIDE:
            raise _too_large(f"{w}×{h} pixels", max_pixels)
        if getattr(im, "is_animated", False):  # looks at frame 2 only; n_frames would walk every frame
            im.seek(0)
            notes.append("animated image: only its first frame is used")
        im.load()
    return im, notes


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer / float grayscale → 8-bit "L" (16-bit scaled by 1/257, others by their range)."""
    a = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16") or (im.mode == "I" and a.min() >= 0 and a.max() > 255 and a.max() <= 65535):
        a = a / 257.0
    elif a.min() < 0 or a.max() > 255 or im.mode == "F":
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def _to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        notes.append(f"{'16' if mode.startswith('I;16') else '32'}-bit image scaled to 8 bits")
        return _to_8bit_gray(im).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas filled with white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK colours converted to RGB")
    return im.convert("RGB")


def load_image(data: bytes, *, name: str | None = None, max_pixels: int = 40_000_000,
               max_bytes: int = 20 * 2**20) -> Image.Image:
    """Decode an uploaded file to an RGB ``PIL.Image``; raises ``ImageError`` (and nothing else) for bad input, naming
    the file by ``name`` where given.

    ``image.info["notes"]`` lists what was done to it (EXIF rotation, first frame, transparency, 16-bit, CMYK).
    """
    subject = "This file" if name is None else f"“{name}”"
    if not data:
        raise ImageError(f"{subject} is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageError(f"{subject} is {len(data) / 2**20:.1f} MB; at most {max_bytes / 2**20:.0f} MB are accepted.")
    try:
        im, notes = _decode(data, max_pixels, subject)
        if im.getexif().get(0x0112, 1) in range(2, 9):
            notes.append("rotated according to its EXIF orientation")
        rgb = _to_rgb(ImageOps.exif_transpose(im), notes)  # a new image, never ``im`` itself
    except ImageError:
        raise
    except Exception as err:  # decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error, …
        raise ImageError(f"The image could not be decoded — the file is damaged or truncated ({type(err).__name__}: "
                         f"{str(err)[:120]}).") from err
    rgb.info = {"notes": notes}
    return rgb


def _center_square(im: Image.Image) -> Image.Image:
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def _from_uint8(a: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) uint8 → (1, C, H, W) float in [−1, 1]."""
    t = torch.from_numpy(np.array(a, dtype=np.float32)).div(127.5).sub(1.0)
    return t.unsqueeze(0).unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).unsqueeze(0)


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def mnist_style(gray: np.ndarray, size: int = 28) -> np.ndarray:
    """MNIST's preprocessing of a digit: light ink on black (inverted if the background — the border — is bright),
    contrast stretched, the ink's bounding box scaled to fit a (20/28)·size box keeping its aspect ratio, and placed
    so that its centre of mass is at the image centre. Returns (size, size) uint8."""
    a = gray.astype(np.float64)
    if np.median(_border(a)) > 127:
        a = 255.0 - a
    a = np.clip(a - np.median(_border(a)), 0, None)  # background → 0
    if a.max() <= 0:
        raise ImageError("No digit found: the image is one flat colour.")
    a = a / a.max() * 255.0
    ys, xs = np.nonzero(a > 0.2 * 255)
    ink = a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    box = max(1, round(size * 20 / 28))
    h, w = ink.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(ink.astype(np.uint8), "L").resize((nw, nh), Image.LANCZOS), np.float64)
    canvas = np.zeros((size, size))
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top: top + nh, left: left + nw] = small
    total = canvas.sum()
    if total > 0:  # shift the centre of mass to the centre (kept inside the frame)
        cy = (canvas.sum(1) * np.arange(size)).sum() / total
        cx = (canvas.sum(0) * np.arange(size)).sum() / total
        dy = int(np.clip(round((size - 1) / 2 - cy), -top, size - nh - top))
        dx = int(np.clip(round((size - 1) / 2 - cx), -left, size - nw - left))
        canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def to_tensor(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """(1, C, size, size) in [−1, 1]: the centred square crop resized to ``size`` (C = 3), or for C = 1 the
    grayscale image prepared like an MNIST digit (``mnist_style``)."""
    if channels == 3:
        sq = _center_square(image.convert("RGB")).resize((size, size), Image.LANCZOS, reducing_gap=3.0)
        return _from_uint8(np.asarray(sq))
    if channels == 1:
        gray = np.asarray(image.convert("L"))
        return _from_uint8(mnist_style(gray, size))
    raise ValueError(f"channels must be 1 or 3, not {channels}")


def mask_from_canvas(rgba: np.ndarray, size: int) -> torch.Tensor:
    """(1, 1, size, size) {0, 1} mask from a drawable canvas' ``image_data`` (H, W, 4): a cell is 1 if any pixel
    painted into it has alpha > 0 (max-pooling, so thin strokes survive the downscale)."""
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] != 4:
        raise ImageError(f"Expected an RGBA canvas image (H, W, 4), got shape {a.shape}.")
    painted = torch.from_numpy((a[..., 3] > 0).astype(np.float32))[None, None]
    return F.adaptive_max_pool2d(painted, (size, size))

"""Uploads: a corpus of good, odd and hostile files generated here (no binary blobs in the repo). Each must load as RGB
of the right size or raise ImageError with a readable message — never any other exception. Plus the tensor conversions
and the built-in presets."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from lib.media.presets import course_mask, mnist_test_digit, sample_images
from lib.media.uploads import ImageError, load_image, mask_from_canvas, to_tensor


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose IHDR is rewritten to claim width×height (with a correct CRC): a decompression bomb's
    header, for free."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = data[12:29]  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8), "RGB")


def bad_files() -> dict[str, bytes]:
    png = encode(gradient(40, 30), "PNG")
    jpg = encode(gradient(40, 30), "JPEG", quality=90)
    return {
        "not an image": b"%PDF-1.4 this is not a picture at all" * 10,
        "zero bytes": b"",
        "truncated PNG": png[: len(png) // 2],
        "truncated JPEG": jpg[: len(jpg) // 2],
        "PNG header only": png[:40],
        "bomb 100k×100k": png_claiming(100_000, 100_000),
        "bomb 10k×10k (PIL warns)": png_claiming(10_000, 10_000),
        "over our pixel cap 7k×7k": png_claiming(7_000, 7_000),
        "absurd side 30000×2": png_claiming(30_000, 2),
        "SVG text": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        "EPS (never handed to ghostscript)": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    }


@pytest.mark.parametrize("name", list(bad_files()))
def test_bad_files_raise_image_error_with_a_message(name):
    with pytest.raises(ImageError) as info:
        load_image(bad_files()[name])
    message = str(info.value)
    assert len(message) > 20 and "Traceback" not in message


def test_too_large_images_are_refused_in_plain_words_with_their_size_and_the_limit():
    limit = "at most 40 megapixels and 20,000 pixels a side are accepted. Downscale it first."
    for claimed, size in (((10_000, 10_000), "10000×10000 pixels"), ((100_000, 100_000), "more than 179 megapixels")):
        with pytest.raises(ImageError) as info:
            load_image(png_claiming(*claimed))
        assert str(info.value) == f"The image is {size}; {limit}"


def test_the_size_limits_are_checked_before_decoding():
    with pytest.raises(ImageError, match="megapixels"):
        load_image(png_claiming(7_000, 7_000))  # 49 MP > 40 MP: refused from the header alone
    with pytest.raises(ImageError, match="MB"):
        load_image(encode(gradient(64, 64), "PNG"), max_bytes=100)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_cmyk_jpeg_becomes_rgb():
    im = load_image(encode(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG", quality=95))  # pure red in CMYK
    assert im.mode == "RGB" and im.size == (20, 10)
    r, g, b = np.asarray(im).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60
    assert any("CMYK" in n for n in im.info["notes"])


def test_16_bit_png_is_scaled_to_8_bits():
    a = np.linspace(0, 65535, 32 * 16).reshape(16, 32).astype(np.uint16)
    im = load_image(encode(Image.fromarray(a), "PNG"))
    assert im.mode == "RGB" and im.size == (32, 16)
    out = np.asarray(im)[..., 0].astype(int)
    assert out.min() == 0 and out.max() == 255
    assert np.abs(out - np.round(a / 257)).max() <= 1
    assert any("16-bit" in n for n in im.info["notes"])


def test_palette_with_transparency_and_rgba_are_composited_on_white():
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.paste(1, (0, 0, 5, 10))  # left half red, right half palette index 0 = transparent black
    im = load_image(encode(p, "PNG", transparency=0))
    a = np.asarray(im)
    assert im.mode == "RGB" and (a[:, :5] == [255, 0, 0]).all() and (a[:, 5:] == 255).all()

    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 8, 4))  # top opaque blue, bottom fully transparent
    a = np.asarray(load_image(encode(rgba, "PNG")))
    assert (a[:4] == [0, 0, 255]).all() and (a[4:] == 255).all()

    half = np.asarray(load_image(encode(Image.new("LA", (4, 4), (0, 128)), "PNG")))  # black at 50 % alpha → grey
    assert np.abs(half.astype(int) - 127).max() <= 1


def test_grayscale_and_1_bit():
    gray = load_image(encode(Image.new("L", (12, 7), 77), "PNG"))
    assert gray.mode == "RGB" and gray.size == (12, 7) and (np.asarray(gray) == 77).all()
    bw = load_image(encode(Image.new("1", (5, 5), 1), "BMP"))
    assert (np.asarray(bw) == 255).all()


def test_exif_orientation_6_is_applied():
    im = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = load_image(encode(im, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    # the left column of the stored image (dark red channel) becomes the top row once rotated clockwise
    a = np.asarray(out).astype(int)
    assert a[0, :, 0].mean() < 40 and a[-1, :, 0].mean() > 200
    assert any("EXIF" in n for n in out.info["notes"])


def test_animated_gif_uses_the_first_frame_and_says_so():
    frames = [Image.new("RGB", (16, 12), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    im = load_image(data)
    assert im.size == (16, 12) and im.mode == "RGB"
    assert (np.abs(np.asarray(im).astype(int) - [255, 0, 0]) <= 8).all()
    assert im.info["notes"] == ["animated image: only its first frame is used"]


def test_plain_images_load_unchanged_without_notes():
    src = gradient(33, 21)
    for fmt in ("PNG", "BMP", "WEBP", "TIFF"):
        im = load_image(encode(src, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
        assert im.size == (33, 21) and np.array_equal(np.asarray(im), np.asarray(src)), fmt
        assert im.info["notes"] == []


def test_to_tensor_rgb_center_crops_and_scales_to_minus_one_one():
    im = Image.new("RGB", (300, 100), (255, 255, 255))
    im.paste((0, 0, 0), (100, 0, 200, 100))  # the middle square is black, the sides white
    t = to_tensor(im, 64, 3)
    assert t.shape == (1, 3, 64, 64) and t.dtype == torch.float32
    assert torch.allclose(t, torch.full_like(t, -1.0))  # only the centre square survives the crop


def test_to_tensor_mnist_style_inverts_fits_20px_and_centres():
    im = Image.new("L", (200, 300), 255)  # a dark vertical bar on white paper, off centre
    im.paste(0, (20, 30, 60, 230))
    t = to_tensor(im.convert("RGB"), 28, 1)
    assert t.shape == (1, 1, 28, 28) and t.min() >= -1 and t.max() <= 1
    ink = (t[0, 0] > 0).nonzero()
    rows, cols = ink[:, 0], ink[:, 1]
    assert rows.max() - rows.min() + 1 == 20  # the taller side is scaled to 20 px
    assert abs(rows.float().mean().item() - 13.5) <= 1 and abs(cols.float().mean().item() - 13.5) <= 1
    assert t[0, 0, 0].max() == -1 and t[0, 0, :, 0].max() == -1  # background black like MNIST
    with pytest.raises(ImageError, match="flat"):
        to_tensor(Image.new("RGB", (50, 50), (9, 9, 9)), 28, 1)


def test_mask_from_canvas_marks_painted_cells():
    canvas = np.zeros((256, 256, 4), np.uint8)
    canvas[0:32, 128:160, 3] = 255  # a painted block → rows 0–7, cols 32–39 of a 64 mask
    canvas[200, 10, 3] = 40  # one faint antialiased pixel still counts
    m = mask_from_canvas(canvas, 64)
    assert m.shape == (1, 1, 64, 64) and set(m.unique().tolist()) == {0.0, 1.0}
    assert m[0, 0, :8, 32:40].all() and m.sum() == 8 * 8 + 1 and m[0, 0, 50, 2] == 1
    with pytest.raises(ImageError):
        mask_from_canvas(np.zeros((10, 10, 3), np.uint8), 64)


def test_presets():
    images = sample_images()
    assert set(images) == {"rocket", "astronaut", "coffee", "camera man"}
    assert all(im.mode == "RGB" and min(im.size) >= 300 for im in images.values())
    m = course_mask(64)
    assert m.shape == (1, 1, 64, 64) and m.sum() == 17 * 17 and m[0, 0, 2, 24] == 1 and m[0, 0, 19, 41] == 0
    assert course_mask(128).sum() == 34 * 34

    class FakeDigits:
        images = torch.arange(4 * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(4, 28, 28)
        labels = torch.tensor([3, 7, 3, 1])

    d = mnist_test_digit(FakeDigits, 3, index=1)
    assert d.shape == (1, 1, 28, 28)
    assert torch.allclose(d[0, 0], FakeDigits.images[2].float() / 127.5 - 1)
    with pytest.raises(ValueError):
        mnist_test_digit(FakeDigits, 5)
    with pytest.raises(IndexError, match="there are 2 test images of a 3"):
        mnist_test_digit(FakeDigits, 3, index=2)  # never wraps around to #0

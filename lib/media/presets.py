"""Built-in inputs for the part-A pages: sample photos, MNIST test digits and the course's inpainting mask.

The photos are scikit-image's bundled test images (public domain / CC0, shipped inside the package), so the pages work
offline; the course's own test photo (the Campanile) is not redistributable here, the rocket stands in for it.
"""

from __future__ import annotations

import torch
from PIL import Image

from lib.train.data import Digits

COURSE_MASK_ROWS = (2, 19)  # the course's preset rectangle on the 64×64 test photo, as Python slices [2:19, 24:41]
COURSE_MASK_COLS = (24, 41)


def sample_images() -> dict[str, Image.Image]:
    """Name → RGB photo, from ``skimage.data`` (no download)."""
    from skimage import data

    arrays = {
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "camera man": data.camera(),
    }
    return {name: Image.fromarray(a).convert("RGB") for name, a in arrays.items()}


def digit_positions(digits: Digits, label: int) -> torch.Tensor:
    """The positions of the digits of class ``label`` in ``digits``, in order (their count bounds an index)."""
    return torch.nonzero(torch.as_tensor(digits.labels) == int(label)).flatten()


def mnist_test_digit(test_digits: Digits, label: int, index: int = 0) -> torch.Tensor:
    """The ``index``-th test digit of class ``label`` as (1, 1, 28, 28) in [−1, 1] (the DDPMs' pixel range).

    An index past the last one is an IndexError, never another image: the caller shows the index it asked for.
    """
    positions = digit_positions(test_digits, label)
    if len(positions) == 0:
        raise ValueError(f"no test digit with label {label}")
    if not 0 <= index < len(positions):
        raise IndexError(f"there are {len(positions)} test images of a {label}: #{index} does not exist")
    image = torch.as_tensor(test_digits.images[positions[index]])
    return (image.float() / 127.5 - 1.0).reshape(1, 1, 28, 28)


def course_mask(size: int = 64) -> torch.Tensor:
    """(1, 1, size, size): 1 on rows [2:19] × columns [24:41] of a 64×64 image (the course's preset, 1 = new content),
    the rectangle scaled to other sizes."""
    mask = torch.zeros(1, 1, size, size)
    r0, r1 = (round(v * size / 64) for v in COURSE_MASK_ROWS)
    c0, c1 = (round(v * size / 64) for v in COURSE_MASK_COLS)
    mask[..., r0:r1, c0:c1] = 1.0
    return mask

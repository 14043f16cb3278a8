"""Shared fixtures. Real MNIST comes from ../shared/data (never copied into the repo); tests that need it skip if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_RAW = ROOT.parent / "shared" / "data" / "MNIST" / "raw"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A writable torchvision root holding the canonical raw MNIST files."""
    if not SHARED_RAW.exists():
        pytest.skip("canonical MNIST files not found in ../shared/data")
    from lib.data import import_raw_files

    return import_raw_files(SHARED_RAW, tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="session")
def mnist_train(mnist_root):
    from lib.data import load_mnist

    return load_mnist(True, root=mnist_root, download=False)


@pytest.fixture(scope="session")
def mnist_test(mnist_root):
    from lib.data import load_mnist

    return load_mnist(False, root=mnist_root, download=False)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the model cache at an empty temporary folder."""
    from lib import model_store

    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)

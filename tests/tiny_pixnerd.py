"""Tiny stand-ins of PixNerd's released ``model.ckpt`` for the loader's tests: Lightning checkpoints written by
``torch.save`` in the real layout — ``state_dict`` with ``denoiser.*``, ``ema_denoiser.*`` and another module's
weights, Adam's ``optimizer_states``, ``lr_schedulers``, ``loops``, ``callbacks`` and ``hyper_parameters`` holding
objects of the training code (a class, a dict subclass, a ``functools.partial`` of its function, a ``defaultdict``,
a ``torch.nn`` module). The training code is a throwaway module, deleted from ``sys.modules`` and from disk once the
file is written, as it is absent where the app loads the released file."""

from __future__ import annotations

import collections
import functools
import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lib.backends.pixnerd.config import CHECKPOINT_FILE, REPO, TINY, XXL, PixNerdConfig
from lib.backends.pixnerd.model import build_pixnerd

GOLDEN = Path(__file__).parents[1].parent / "shared" / "golden" / "pixnerd"
TRAINING_CODE = "pixnerd_training_code"  # the throwaway module's name (never importable when the file is read)


def golden_file(name: str) -> Path:
    """A file of ``../shared/golden/pixnerd``; the test is skipped, saying where it was looked for, if it is absent."""
    path = GOLDEN / name
    if not path.exists():
        pytest.skip(f"the reference tensors are not here ({path}): they live in ../shared/golden/pixnerd beside the "
                    "project")
    return path


def golden_tensors() -> dict[str, torch.Tensor]:
    """tiny.safetensors: the tiny instance's weights under ``model.`` and the cases ``case{0..3}.{x,t,y,out}``."""
    from safetensors.torch import load_file

    return load_file(golden_file("tiny.safetensors"))


def golden_weights(golden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tiny instance's state dict (the ``model.`` prefix stripped)."""
    return {k.removeprefix("model."): v for k, v in golden.items() if k.startswith("model.")}


def random_tiny_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of the tiny configuration with PyTorch's random initialisation (no reference files needed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_pixnerd(TINY, device="cpu").state_dict()


def _training_code(folder: Path):
    (folder / f"{TRAINING_CODE}.py").write_text(textwrap.dedent("""
        class EMATracker:
            def __init__(self, decay):
                self.decay = decay
                self.history = [decay]

        class Hyper(dict):
            pass

        def make_optimizer(params, lr):
            raise RuntimeError("the training code was called")
    """))
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(TRAINING_CODE)
    finally:
        sys.path.remove(str(folder))


def write_lightning_checkpoint(path: Path, ema: dict[str, torch.Tensor], denoiser: dict[str, torch.Tensor],
                               **extra) -> Path:
    """A Lightning checkpoint at ``path`` with ``ema`` under ``ema_denoiser.`` and ``denoiser`` under ``denoiser.``;
    ``extra`` entries are added at the top level (or replace the defaults). Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = _training_code(path.parent)
    try:
        state = collections.OrderedDict({f"denoiser.{k}": v for k, v in denoiser.items()})
        state.update({f"ema_denoiser.{k}": v for k, v in ema.items()})
        state["conditioner.scale"] = torch.ones(1)
        moments = {i: {"step": torch.tensor(10.0), "exp_avg": torch.zeros_like(v), "exp_avg_sq": torch.ones_like(v)}
                   for i, v in enumerate(denoiser.values())}
        checkpoint = {
            "epoch": 3, "global_step": 1000, "pytorch-lightning_version": "2.5.1",
            "state_dict": state,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min'}": {"best_model_path": "", "dirpath": "ckpt"},
                          "EMACallback": code.EMATracker(0.9999)},
            "optimizer_states": [{"state": moments, "param_groups": [
                {"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.0, "params": list(moments)}]}],
            "lr_schedulers": [{"base_lrs": [1e-4], "last_epoch": 3, "_step_count": 4, "lr_lambdas": [None]}],
            "hparams_name": "kwargs",
            "hyper_parameters": {
                "optimizer": functools.partial(code.make_optimizer, lr=1e-4),
                "trainer": code.Hyper(max_steps=1000),
                "counts": collections.defaultdict(int, {"images": 7}),
                "probe": torch.nn.Linear(2, 2),
                "tokens": b"\x00\xffqwen",
                "tags": {"t2i", "pixel"},
            },
        }
        checkpoint.update(extra)
        torch.save(checkpoint, path)
    finally:
        sys.modules.pop(TRAINING_CODE, None)
        (path.parent / f"{TRAINING_CODE}.py").unlink()
    return path


def write_snapshot(root: Path, ema: dict[str, torch.Tensor], denoiser: dict[str, torch.Tensor]) -> Path:
    """``root/MCG-NJU/PixNerd-XXL-P16-T2I/model.ckpt``, the snapshot folder's layout. Returns ``root``."""
    write_lightning_checkpoint(root / REPO / CHECKPOINT_FILE, ema, denoiser)
    return root


def shifted(weights: dict[str, torch.Tensor], by: float = 1.0) -> dict[str, torch.Tensor]:
    """Other values under the same keys (the training weights beside the EMA)."""
    return {k: v + by for k, v in weights.items()}



def app_sized_config() -> PixNerdConfig:
    """A PixNerd the app can run at the course's 512 × 512 on a CPU in a test: the released patches (16 px) and text
    length (128 tokens), the tiny Qwen3's width for its prompts (tests/tiny_qwen.py), everything else tiny."""
    from lib.backends.pixnerd.encoder import MAX_TOKENS
    from tests.tiny_qwen import TINY as TINY_QWEN

    return PixNerdConfig(in_channels=3, patch_size=XXL.patch_size, num_groups=2, hidden_size=32,
                         txt_embed_dim=TINY_QWEN["hidden_size"], txt_max_length=MAX_TOKENS, num_text_blocks=1,
                         decoder_hidden_size=4, num_encoder_blocks=1, num_decoder_blocks=1)


def app_sized_label() -> str:
    """What the app calls the ``app_sized_config`` PixNerd (``model_label``: its shape, not the released name)."""
    from lib.backends.pixnerd.config import model_label

    return model_label(app_sized_config())


def write_app_snapshots(root: Path, seed: int = 0) -> Path:
    """What DIFFUSION_LAB_PIXNERD_DIR points at, both models at toy size in their real layouts: the ``app_sized_config``
    PixNerd as a Lightning checkpoint (random weights, every one non-zero: the final layer too) and Qwen3-1.7B
    (tests/tiny_qwen.py). Returns ``root``."""
    from tests.tiny_qwen import write_tiny_qwen_snapshot

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weights = {k: torch.randn_like(v) * 0.05 + (1.0 if "norm" in k else 0.0)  # the norms' gains about 1
                   for k, v in build_pixnerd(app_sized_config(), device="cpu").state_dict().items()}
    write_snapshot(root, weights, shifted(weights))
    return write_tiny_qwen_snapshot(root, seed)

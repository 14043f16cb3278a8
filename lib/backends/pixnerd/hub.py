"""Where PixNerd's checkpoint comes from, the messages for whatever stands in the way, and ``load_pixnerd``.

Two sources, as for DeepFloyd IF (lib.backends.if_hub):

* **the Hugging Face hub** (default): ``hf_hub_download(REPO, "model.ckpt", revision=REVISION)`` into the Hugging Face
  cache — several GB the first time; afterwards the cache serves it, also offline (the revision is a commit hash).
  A token (``HF_TOKEN``) is optional: sent when set; should the hub answer that the repository is gated or the token
  is rejected, the message says what to do;
* **a local snapshot folder** (``DIFFUSION_LAB_PIXNERD_DIR``): ``<folder>/MCG-NJU/PixNerd-XXL-P16-T2I/model.ckpt``, as
  ``hf download … --local-dir`` writes it; the same folder holds ``<folder>/Qwen/Qwen3-1.7B/``, the prompt encoder.
  Nothing then touches the network and no token is needed.

The checkpoint is read by lib.backends.pixnerd.checkpoint (tensors only, no code run) and only its EMA weights are loaded,
strictly, into the module built on the meta device: each tensor is placed once (on the CPU in float32 it stays the
memory-mapped tensor itself), so the weights never exist twice. The file must then not be rewritten in place while the
model is in use (the hub and ``hf download`` write a new file and rename it). The token is never logged or put in a
message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lib.backends import hub
from lib.backends.pixnerd.checkpoint import CheckpointError, ema_state_dict
from lib.backends.pixnerd.config import (CHECKPOINT_FILE, REPO, REVISION, XXL, NotPixNerdWeights, PixNerdConfig,
                                        config_from_weights)
from lib.backends.pixnerd.memory import device_problem
from lib.backends.pixnerd.model import PixNerdTransformer, build_pixnerd

DIR_ENV = "DIFFUSION_LAB_PIXNERD_DIR"
DEVICE_ENV = "DIFFUSION_LAB_PIXNERD_DEVICE"  # "cpu" runs PixNerd without a GPU: tests and tiny snapshots (the XXL
# takes minutes per image there: bench/RESULTS.md)

NO_NETWORK = hub.no_network_message(f"PixNerd's checkpoint ({REPO}, {CHECKPOINT_FILE}) is", DIR_ENV)


def snapshot_missing_message(folder: Path) -> str:
    return hub.snapshot_missing_message(DIR_ENV, folder, REPO, CHECKPOINT_FILE, file=CHECKPOINT_FILE,
                                        revision=REVISION)


class PixNerdUnavailable(Exception):
    """PixNerd cannot be loaded here; the message says what is missing and how to fix it (never the token)."""


@dataclass(frozen=True)
class CheckpointSource:
    """Where ``model.ckpt`` comes from: the hub with ``token`` (optional), or the snapshots under ``folder``."""

    token: str | None = None
    folder: Path | None = None

    def checkpoint_path(self) -> Path:
        """The local path of ``model.ckpt``: the snapshot's, or the hub cache's (downloaded if not there yet)."""
        if self.folder is not None:
            path = self.folder / REPO / CHECKPOINT_FILE
            if not path.is_file():
                raise PixNerdUnavailable(snapshot_missing_message(self.folder))
            return path
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(REPO, CHECKPOINT_FILE, revision=REVISION, token=self.token))
        except Exception as err:  # noqa: BLE001 — the download boundary: every failure becomes a message for the user
            raise PixNerdUnavailable(hub.download_problem(err, REPO, self.token, NO_NETWORK)) from None


def source(token: str | None = None, folder: str | Path | None = None) -> CheckpointSource:
    """The source the settings select: ``folder`` (or ``DIFFUSION_LAB_PIXNERD_DIR``) if given, else the hub with
    ``token`` (or ``HF_TOKEN``, or none)."""
    folder = folder or os.environ.get(DIR_ENV) or None
    if folder:
        return CheckpointSource(folder=Path(folder).expanduser())
    return CheckpointSource(token=token or os.environ.get("HF_TOKEN") or None)


def pixnerd_device() -> torch.device:
    """The GPU — the released PixNerd needs one, and a machine without it is told so — unless
    ``DIFFUSION_LAB_PIXNERD_DEVICE`` names another device."""
    return torch.device(os.environ.get(DEVICE_ENV) or "cuda")


def _device_problem(device: torch.device | str, dtype: torch.dtype, config: PixNerdConfig | None) -> str | None:
    """What stands between ``device`` and PixNerd of ``config`` (None: not known yet): the XXL's memory plan
    (``device_problem``); for any configuration, a CUDA device asked of a machine without one."""
    if config == XXL or (torch.device(device).type == "cuda" and not torch.cuda.is_available()):
        return device_problem(device, dtype)
    return None


def load_pixnerd(src: CheckpointSource | None, device: torch.device | str, dtype: torch.dtype = torch.float32,
                 config: PixNerdConfig | None = None) -> PixNerdTransformer:
    """The denoiser with the checkpoint's EMA weights, strictly loaded, on ``device`` in ``dtype`` (the course:
    float32), in eval mode without gradients. Its configuration is ``config`` if given, else the one the weights
    describe (``config_from_weights``: the released XXL for the course's file; a snapshot folder may hold another).

    Raises ``PixNerdUnavailable`` (no GPU or one too small for the released size — checked before anything is
    downloaded —, missing snapshot, offline, gated, unsafe or damaged file, weights of another configuration than
    ``config`` or of none, GPU too full); the checkpoint's own error is its ``__cause__``.
    """
    src = src or source()
    if problem := _device_problem(device, dtype, config or (XXL if src.folder is None else None)):
        raise PixNerdUnavailable(problem)  # the hub's pinned file is the XXL: asked before it is downloaded
    path = src.checkpoint_path()
    try:
        state = ema_state_dict(path)
    except CheckpointError as err:
        raise PixNerdUnavailable(str(err)) from err
    if config is None:
        try:
            config = config_from_weights({key: value.shape for key, value in state.items()})
        except NotPixNerdWeights as err:
            raise PixNerdUnavailable(f"{path}: {err}") from err
        if problem := _device_problem(device, dtype, config):
            raise PixNerdUnavailable(problem)
    model = build_pixnerd(config, device="meta", dtype=dtype)
    try:
        placed = {key: value.to(device=device, dtype=dtype) for key, value in state.items()}
        model.load_state_dict(placed, strict=True, assign=True)
    except torch.cuda.OutOfMemoryError as err:
        raise PixNerdUnavailable(hub.out_of_memory_message(REPO)) from err
    except RuntimeError as err:
        problem = " ".join(str(err).split())[:400]  # one line: PyTorch lists the keys on tab-indented lines
        raise PixNerdUnavailable(f"{path} does not hold the weights of this PixNerd configuration: {problem}") from err
    return model.requires_grad_(False)

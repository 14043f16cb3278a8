"""Where DeepFloyd IF's weights come from, and everything that can stand in the way, as messages for the user.

Two sources:

* **the Hugging Face hub** (default): the repositories are gated, so it needs a token (``HF_TOKEN``) whose account
  accepted the licence, and a network the first time (afterwards the hub cache serves them, also offline);
* **a local snapshot folder** (``DIFFUSION_LAB_IF_DIR``, in the environment or ``.streamlit/secrets.toml``): one
  sub-folder per repository, named like it (``<folder>/DeepFloyd/IF-I-XL-v1.0``), as ``hf download … --local-dir``
  writes it. Nothing then touches the network and no token is needed — for a cluster or a GPU server with the
  weights pre-downloaded (set ``HF_HUB_OFFLINE=1`` as well to forbid any hub access).

``check_if_requirements`` lists what is missing, in the order to fix it (GPU, token, network, licence); every hub
failure met while loading becomes an ``IFUnavailable`` that says how to fix it. The token is never logged, put in a
message, a cache key or a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lib.backends import hub
from lib.backends.hub import NO_TOKEN, no_network_message
from lib.backends.if_configs import IF_VARIANTS, STAGE2, T5_REPO
from lib.backends.if_memory import gib, host_memory_bytes, plan_memory, requirement, too_small_message

DIR_ENV = "DIFFUSION_LAB_IF_DIR"
DEVICE_ENV = "DIFFUSION_LAB_IF_DEVICE"  # "cpu" runs IF without a GPU: for tests and tiny models, minutes per step at real size

NO_NETWORK = no_network_message("the DeepFloyd IF weights are", DIR_ENV)


def no_gpu_message(variant: str) -> str:
    return f"{requirement(variant)}; this machine has none — the app stays on the built-in MNIST model"


def snapshot_missing_message(folder: Path, repo: str) -> str:
    return hub.snapshot_missing_message(DIR_ENV, folder, repo, "model_index.json")


class IFUnavailable(Exception):
    """DeepFloyd IF cannot be used here; the message says what is missing and how to fix it (never the token)."""


@dataclass(frozen=True)
class Source:
    """Where the weights come from: the hub with ``token``, or the snapshots under ``folder``."""

    token: str | None = None
    folder: Path | None = None

    def location(self, repo: str) -> str:
        """What ``from_pretrained`` is given: the snapshot's path, or the repository id."""
        return str(self.folder / repo) if self.folder is not None else repo

    def load(self, loader: Callable, repo: str, **kwargs):
        """``loader(location, **kwargs)`` (any ``from_pretrained``), every failure raised as ``IFUnavailable``."""
        if self.folder is not None:
            if not (self.folder / repo / "model_index.json").is_file():
                raise IFUnavailable(snapshot_missing_message(self.folder, repo))
            kwargs["local_files_only"] = True
        else:
            kwargs["token"] = self.token
        try:
            return loader(self.location(repo), **kwargs)
        except torch.cuda.OutOfMemoryError as err:
            raise IFUnavailable(hub.out_of_memory_message(repo)) from err
        except Exception as err:  # noqa: BLE001 — the loading boundary: every failure becomes a message for the user
            if self.folder is not None:
                raise IFUnavailable(hub.folder_failure_message(repo, self.folder / repo, err)) from None
            raise IFUnavailable(hub.download_problem(err, repo, self.token, NO_NETWORK)) from None


def source(token: str | None = None, folder: str | Path | None = None) -> Source:
    """The source the settings select: ``folder`` (or ``DIFFUSION_LAB_IF_DIR``) if given, else the hub with
    ``token`` (or ``HF_TOKEN``)."""
    folder = folder or os.environ.get(DIR_ENV) or None
    if folder:
        return Source(folder=Path(folder).expanduser())
    return Source(token=token or os.environ.get("HF_TOKEN") or None)


def if_device() -> torch.device:
    """The GPU — IF needs one, and a machine without it is told so — unless ``DIFFUSION_LAB_IF_DEVICE`` names another
    device (``cpu``: tests and tiny models)."""
    return torch.device(os.environ.get(DEVICE_ENV) or "cuda")


def hub_error_message(err: BaseException, repo: str) -> str:
    """``lib.backends.hub.hub_error_message`` in IF's words."""
    return hub.hub_error_message(err, repo, NO_NETWORK)


def _cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "model_index.json"), str)


def _probe_hub(repo: str, token: str | None) -> str | None:
    """None if ``repo`` can be downloaded with ``token`` (or is cached), else the problem."""
    from huggingface_hub import auth_check, model_info

    try:
        if token:
            auth_check(repo, token=token)
        else:
            model_info(repo, token=False)  # gated repos' metadata is public: a pure reachability check
        return None
    except Exception as err:  # any failure to reach or authorise is reported, never raised
        problem = hub_error_message(err, repo)
        return None if problem == NO_NETWORK and _cached(repo) else hub.scrub(problem, token)


def gpu_problem(variant: str, device: torch.device) -> str | None:
    """None if ``variant``'s stage I fits the GPU (or IF is asked to run on the CPU), else what is wrong."""
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return no_gpu_message(variant)
    props = torch.cuda.get_device_properties(device)
    if not plan_memory(variant, props.total_memory, host_memory_bytes()).fits:
        return too_small_message(variant, props.name, props.total_memory)
    return None


def local_problems(variant: str = "IF-I-XL", src: Source | None = None,
                   device: torch.device | None = None) -> list[str]:
    """What is missing without asking the network: the GPU (and its size), then a token or the snapshots."""
    src = src or source()
    problems = [p for p in [gpu_problem(variant, device or if_device())] if p]
    if src.folder is not None:
        for repo in dict.fromkeys([IF_VARIANTS[variant], T5_REPO]):
            if not (src.folder / repo / "model_index.json").is_file():
                problems.append(snapshot_missing_message(src.folder, repo))
    elif src.token is None:
        problems.append(NO_TOKEN)
    return problems


def check_if_requirements(variant: str = "IF-I-XL", src: Source | None = None,
                          device: torch.device | None = None) -> list[str]:
    """Everything that stops ``load_if`` from working here, in the order to fix it: GPU, token (or snapshots),
    network, licence — the latter two probed on the hub for the stage-I repository and the text-encoder repository."""
    src = src or source()
    problems = local_problems(variant, src, device)
    if src.folder is None:
        for repo in dict.fromkeys([IF_VARIANTS[variant], T5_REPO]):
            problem = _probe_hub(repo, src.token)
            if problem is not None and problem not in problems:
                problems.append(problem)
                if problem == NO_NETWORK:
                    break
    return problems


def stage2_problem(src: Source | None = None) -> str | None:
    """None if stage II (IF-II-L, its own gated repository) can be loaded from ``src``, else why not — checked up
    front, so the A0 page can say so before anyone asks for an upscale."""
    src = src or source()
    if src.folder is not None:
        ok = (src.folder / STAGE2 / "model_index.json").is_file()
        return None if ok else snapshot_missing_message(src.folder, STAGE2)
    return _probe_hub(STAGE2, src.token) if src.token else NO_TOKEN


def stage2_memory_problem(variant: str, device: torch.device) -> str | None:
    """None if stage II fits on the GPU beside ``variant``'s stage I, else which variant leaves room for it."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(device)
    if plan_memory(variant, props.total_memory).stage2:
        return None
    roomy = [v for v in IF_VARIANTS if plan_memory(v, props.total_memory).stage2]
    advice = f"{roomy[0]} leaves room for it" if roomy else "no IF variant leaves room for it on this card"
    return (f"Stage II (64 → 256 px) does not fit beside {variant} on {props.name} ({gib(props.total_memory)}): "
            f"{advice}")

"""The Hugging Face hub as every pretrained backend meets it (DeepFloyd IF, PixNerd, its Qwen3 prompt encoder): the
messages for whatever stands in the way, one wording for all of them, and the reading of a hub failure.

Each backend has two sources — the hub (a token where the repository is gated) or a folder of pre-downloaded
snapshots named by an environment variable — and turns every failure into one of these messages. The token is never
put in a message (``scrub``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

NO_TOKEN = (
    "No Hugging Face token: set HF_TOKEN or add it to .streamlit/secrets.toml (HF_TOKEN = \"hf_…\"); "
    "create a read token at https://huggingface.co/settings/tokens"
)
# diffusers and transformers import their classes lazily, and that is not thread-safe: two sessions whose first page
# run builds a model class at the same moment can get "cannot import name 'UNet2DConditionModel'"
LAZY_IMPORT = threading.Lock()


def no_network_message(what: str, dir_env: str) -> str:
    """The hub cannot be reached and ``what`` ("the DeepFloyd IF weights") is not in the local cache."""
    return (f"The Hugging Face hub (huggingface.co) is unreachable — no network, or HF_HUB_OFFLINE is set — and {what} "
            f"not in the local cache: connect this machine to the internet once so that the download is cached, or "
            f"point {dir_env} at a folder of pre-downloaded snapshots (see the README)")


def snapshot_missing_message(dir_env: str, folder: Path, repo: str, marker: str, *, file: str | None = None,
                             revision: str | None = None) -> str:
    """``dir_env`` names a folder that lacks ``repo``'s snapshot (``marker``, the file every snapshot has), and the
    ``hf download`` command that fetches it (``file`` alone if given, at ``revision`` if pinned)."""
    command = " ".join(["hf download", repo, *([file] if file else []), *(["--revision", revision] if revision else []),
                        "--local-dir", str(folder / repo)])
    return f"{dir_env} is set, but {folder / repo / marker} does not exist: download it with `{command}`"


def license_message(repo: str) -> str:
    return (f"The token has no access to the gated model {repo}: accept the license at https://huggingface.co/{repo} "
            "while logged in as the token's owner, then reload")


def rejected_message(repo: str) -> str:
    return (f"The hub refused {repo} (invalid or expired token, or no such repository) — create a new read token at "
            "https://huggingface.co/settings/tokens and set HF_TOKEN")


def out_of_memory_message(repo: str) -> str:
    return (f"Not enough free GPU memory to load {repo}: another program uses the GPU "
            f"({torch.cuda.mem_get_info()[0] / 2**30:.1f} GiB free)")


def folder_failure_message(repo: str, location: Path | str, err: BaseException) -> str:
    """A snapshot that is there but does not load (a partial download, a wrong revision)."""
    return f"Could not load {repo} from {location}: {type(err).__name__}: {str(err)[:300]}"


def scrub(text: str, token: str | None) -> str:
    """``text`` with the token, should an error message quote it, replaced by ``hf_***``."""
    return text.replace(token, "hf_***") if token else text


def _causes(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


_NETWORK_ERRORS = {"ConnectionError", "ConnectError", "ConnectTimeout", "TimeoutException", "TransportError",
                   "NetworkError", "Timeout", "LocalEntryNotFoundError", "OfflineModeIsEnabled", "gaierror"}


def hub_error_message(err: BaseException, repo: str, no_network: str) -> str:
    """What a hub/loading failure means for the user: license, network (``no_network``, the backend's wording),
    rejected token, or the error itself."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    chain = _causes(err)
    if any(isinstance(e, GatedRepoError) for e in chain):
        return license_message(repo)
    if any(_NETWORK_ERRORS & {c.__name__ for c in type(e).__mro__} for e in chain):
        return no_network
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return rejected_message(repo)
    text = " ".join(str(e) for e in chain).lower()
    if "gated" in text or "restricted" in text or " 403" in text:
        return license_message(repo)
    if "401" in text:
        return rejected_message(repo)
    if "connect" in text or "offline" in text or "internet" in text:
        return no_network
    return f"Could not load {repo}: {type(err).__name__}: {str(err)[:300]}"


def download_problem(err: BaseException, repo: str, token: str | None, no_network: str) -> str:
    """``hub_error_message``, scrubbed of the token; without a token a gated repository's refusal means "set a
    token" (anonymous requests fail the same way as an account that has not accepted the licence)."""
    problem = hub_error_message(err, repo, no_network)
    if token is None and problem == license_message(repo):
        problem = NO_TOKEN
    return scrub(problem, token)

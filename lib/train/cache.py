"""A content-addressed store of trained models: one safetensors file per training configuration.

* Key: SHA-256 of the configuration as canonical JSON — change any hyperparameter, the seed or the dataset and you get
  a different entry; ask again with the same configuration and the entry is loaded instead of retrained.
* Atomic: a file is written under a temporary name in the same folder, flushed, fsynced and ``os.replace``d into
  place, so a process killed mid-write leaves the previous entry (or none) — never half a file (the orphaned
  temporary file is deleted by a later ``evict``).
* Verified: the metadata carries a SHA-256 of every tensor's bytes and of every other metadata field (the training
  configuration lives there); an entry that fails to parse or to match is reported as corrupt (and the caller
  retrains) rather than loaded.
* Bounded: ``evict`` keeps the folder under a size cap, dropping the least recently used entries (reads touch the
  file's mtime).
Only safetensors is ever read: nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

DIGEST_KEY = "tensors_sha256"
STALE_TMP_SECONDS = 3600.0  # a temporary file this old belongs to a writer that died


class CorruptEntry(Exception):
    """A cache file that exists but cannot be trusted (truncated, bit-flipped, wrong format)."""


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-able configuration."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def entry_digest(tensors_sha256: str, metadata: dict[str, str]) -> str:
    """SHA-256 of the tensors' digest (``tensors_digest``) and of every metadata field but the digest itself."""
    fields = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    h = hashlib.sha256(tensors_sha256.encode())
    h.update(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_file(path: Path):
    """Yield a temporary file's name in ``path``'s folder to write; on a clean exit it is fsynced, made readable by
    everyone (0644: ``mkstemp`` makes it owner-only, and a model trained by one account must be readable by the app
    serving it as another) and renamed onto ``path`` (atomic within a folder). On an error it is removed and ``path``
    keeps what it held."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_entry(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``tensors`` + string ``metadata`` to ``path`` atomically, with a digest for ``load_entry`` to check."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = dict(metadata, **{DIGEST_KEY: entry_digest(tensors_digest(tensors), metadata)})
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def load_entry(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read an entry written by ``save_entry``; raises ``FileNotFoundError`` or ``CorruptEntry``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        with safe_open(str(path), framework="pt") as f:  # one open file: header and tensors from the same version
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CorruptEntry(f"{path.name}: unreadable safetensors ({err})") from err
    if metadata.get(DIGEST_KEY) != entry_digest(tensors_digest(tensors), metadata):
        raise CorruptEntry(f"{path.name}: contents do not match their recorded digest")
    try:
        os.utime(path)  # mark as recently used for LRU eviction
    except OSError:
        pass
    return tensors, metadata


def nest(prefix: str, tensors: dict) -> dict[str, torch.Tensor]:
    """``{"<prefix>.<name>": tensor}``: how several groups (weights, optimiser slots, snapshots…) share one flat file."""
    return {f"{prefix}.{name}": t for name, t in tensors.items()}


def unnest(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The group ``nest`` saved under ``prefix``, with its names as they were (as strings)."""
    head = prefix + "."
    return {name[len(head):]: t for name, t in tensors.items() if name.startswith(head)}


def read_metadata(path: str | Path) -> dict[str, str] | None:
    """An entry's metadata from its header alone (no tensor is read, nothing verified); None if it is missing or
    unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError):
        return None


def evict(folder: str | Path, max_bytes: int, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Delete least-recently-used ``*.safetensors`` in ``folder`` until the total is ≤ ``max_bytes``.

    Also deletes temporary files older than ``STALE_TMP_SECONDS`` (left by writers that were killed, which cannot
    clean up after themselves). Files that vanish meanwhile (another thread evicting) are skipped, not an error.
    """
    folder = Path(folder)
    removed = []
    for tmp in folder.glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            pass
    entries = []
    for p in folder.glob("*.safetensors"):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    entries.sort(key=lambda e: e[0])
    total = sum(size for _, size, _ in entries)
    for _, size, p in entries:
        if total <= max_bytes:
            break
        if p in keep:
            continue
        p.unlink(missing_ok=True)
        total -= size
        removed.append(p)
    return removed

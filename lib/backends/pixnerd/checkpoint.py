"""Reading PixNerd's ``model.ckpt`` safely: tensors only, memory-mapped, and no code of the file ever runs.

The released checkpoint is a Lightning checkpoint written by ``torch.save``: a zip archive whose ``<prefix>/data.pkl``
pickles a dict (``state_dict`` with ``denoiser.*`` and ``ema_denoiser.*`` weights, ``optimizer_states``,
``lr_schedulers``, ``callbacks``, ``loops``, ``hyper_parameters``, …) and whose ``<prefix>/data/<key>`` records hold
the tensors' bytes, stored uncompressed. Unpickling it as ``torch.load`` does by default would import and call whatever
the pickle names (the training code's classes — or ``os.system``); ``torch.load(weights_only=True)`` refuses the
training code's classes, and so the whole file. This module reads the pickle with its own restricted unpickler:

* **allow-list** — the only globals resolved to real objects: the tensor rebuild functions
  (``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_parameter``: this module's own versions, which
  build a plain tensor on the mapped bytes and attach no hooks or attributes), torch's dtypes and legacy storage types
  (resolved to their dtype), ``collections.OrderedDict``, ``set``, ``frozenset`` and ``_codecs.encode`` (for latin-1
  only: how protocol 2 pickles ``bytes``). Nothing is imported: every one of them is an object already loaded.
* **refusal** — a global from a module that runs code, imports modules, starts processes or reaches files and the
  network (``CODE_MODULES``: ``os``, ``subprocess``, ``importlib``, ``pickle``, ``io``, ``socket``, …) or a builtin
  that does (``CODE_BUILTINS``: ``eval``, ``exec``, ``__import__``, ``getattr``, ``open``, …) raises
  ``UnsafeCheckpoint`` the moment the pickle names it, before anything is built: a weights file has no reason to
  name them, so the file is treated as tampered with.
* **placeholders** — every other global (the training code's classes and functions, ``functools.partial``, OmegaConf
  nodes, ``torch.nn`` modules in the hyper-parameters, …) becomes a ``Placeholder`` subclass named after it, which is
  never imported and never called: whatever the pickle does with it (call it, instantiate it, set its state, fill it
  like a list or a dict) is only recorded. The refusal list decides between refusing and neutralising; neither ever
  runs the global, so a module missing from it is inert, not a hole.
* **the kept weights** — only ``state_dict`` entries under ``ema_denoiser.`` are kept (prefix stripped), and every one
  must be a tensor: a placeholder (or anything else) among them raises ``UnsafeCheckpoint``.

Storages are slices of one memory map of the file (``UntypedStorage.from_file``, private copy-on-write pages), so a
multi-GB checkpoint costs no RAM until its tensors are read, and the unused optimizer states never are.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle  # only this module's restricted Unpickler: find_class resolves the allow-list, never imports
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

EMA_PREFIX = "ema_denoiser."

CODE_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "sys", "subprocess", "_posixsubprocess", "pty", "multiprocessing",
    "signal", "threading", "_thread", "asyncio", "importlib", "runpy", "pkgutil", "zipimport", "site", "pickle",
    "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "code", "codeop", "pdb", "bdb", "timeit", "ctypes",
    "io", "_io", "shutil", "tempfile", "glob", "socket", "ssl", "http", "urllib", "requests", "webbrowser", "operator",
    "_operator",
})
CODE_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "__build_class__", "open", "getattr", "setattr", "delattr", "globals",
    "locals", "vars", "breakpoint", "input", "help", "exit", "quit",
})


class CheckpointError(Exception):
    """The file is not a readable PyTorch checkpoint of the expected kind; the message says what is wrong."""


class UnsafeCheckpoint(CheckpointError):
    """The checkpoint names code to run, or its weights are not plain tensors: it is refused, and none of it ran."""


class Placeholder:
    """Stands for an object of a class (or the result of a function) that the checkpoint names and this loader never
    imports. ``global_name`` is the dotted name; ``args``/``kwargs`` what it was called or instantiated with, ``state``
    what the pickle set on it, ``items``/``entries`` what it appended or assigned to it."""

    global_name = ""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items, obj.entries = args, kwargs, None, [], {}
        return obj

    def __setstate__(self, state) -> None:
        self.state = state

    def __setitem__(self, key, value) -> None:
        self.entries[key] = value

    def append(self, item) -> None:
        self.items.append(item)

    def extend(self, items) -> None:
        self.items.extend(items)

    def __repr__(self) -> str:
        return f"<placeholder for {self.global_name}>"


class _Storage(NamedTuple):
    """A record's bytes (a slice of the file's memory map) and the dtype the pickle reads them as."""

    bytes: torch.UntypedStorage
    dtype: torch.dtype


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *_ignored) -> torch.Tensor:
    """``torch._utils._rebuild_tensor(_v2)``'s tensor, on the mapped bytes; requires_grad, hooks and metadata dropped
    (``set_`` checks that size and stride stay within the record)."""
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpoint(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage record")
    return torch.empty(0, dtype=storage.dtype).set_(storage.bytes, offset, size, stride)


def _rebuild_parameter(data, _requires_grad=False, _hooks=None) -> torch.Tensor:
    """A saved ``nn.Parameter``, as the plain tensor it wraps."""
    if not isinstance(data, torch.Tensor):
        raise UnsafeCheckpoint(f"a parameter is rebuilt from {type(data).__name__}, not from a tensor")
    return data


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode(text, "latin1")``: how pickle protocol 2 stores ``bytes``. No other codec is looked up."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafeCheckpoint(f"the checkpoint asks for the codec {encoding!r}; only latin1 bytes are read")
    return text.encode("latin1")


def _allowed_globals() -> dict[str, Any]:
    allowed: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "_codecs.encode": _latin1_bytes,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch.UntypedStorage": torch.uint8,
    }
    allowed.update({f"torch.{name}": value for name, value in vars(torch).items() if isinstance(value, torch.dtype)})
    allowed.update({f"torch.{name}": dtype for dtype, name in torch.storage._dtype_to_storage_type_map().items()})
    return allowed


ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` with the rules of the module docstring; storages come from ``records``, slices of the
    file's one memory map."""

    def __init__(self, stream, path: Path, records: dict[str, tuple[int, int]], prefix: str):
        super().__init__(stream)
        self.path, self.records, self.prefix = path, records, prefix
        self.placeholders: dict[str, type[Placeholder]] = {}
        self.storages: dict[str, torch.UntypedStorage] = {}
        self._map: torch.UntypedStorage | None = None

    def find_class(self, module: str, name: str):
        module, name = _python3_name(module, name)
        full = f"{module}.{name}"
        if full in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[full]
        if module.split(".")[0] in CODE_MODULES or (module == "builtins" and name in CODE_BUILTINS):
            raise UnsafeCheckpoint(
                f"{self.path} asks to run {full}, which can run code or reach the system — a weights file has no "
                "reason to; refused, and nothing of it ran. Delete the file and download it again from its source")
        if full not in self.placeholders:
            self.placeholders[full] = type(f"Placeholder[{full}]", (Placeholder,), {"global_name": full})
        return self.placeholders[full]

    def persistent_load(self, pid) -> _Storage:
        """``("storage", dtype, key, location, numel)`` → the bytes of record ``data/<key>`` as that dtype."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise UnsafeCheckpoint(f"{self.path}: a reference that is not a storage record ({str(pid)[:80]})")
        _, dtype, key, _location, numel = pid
        if key not in self.storages:
            record = f"{self.prefix}/data/{key}"
            if record not in self.records:
                raise CheckpointError(f"{self.path} is incomplete: the record {record} is missing")
            offset, size = self.records[record]
            nbytes = numel * dtype.itemsize
            if nbytes > size:
                raise CheckpointError(f"{self.path} is damaged: {record} holds {size} bytes, its tensor needs {nbytes}")
            self.storages[key] = self._file_map()[offset:offset + size]
        return _Storage(self.storages[key], dtype)

    def _file_map(self) -> torch.UntypedStorage:
        if self._map is None:
            self._map = torch.UntypedStorage.from_file(str(self.path), shared=False,
                                                       nbytes=self.path.stat().st_size)
        return self._map


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol 2 writes Python 2 names (``__builtin__.set``); map them as the standard unpickler does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _records(path: Path, archive: zipfile.ZipFile) -> dict[str, tuple[int, int]]:
    """Every stored record's (offset of its bytes in the file, size): the local header is 30 bytes plus the name and
    extra field whose lengths it gives at bytes 26–29."""
    records = {}
    with path.open("rb") as f:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise CheckpointError(f"{path}: record {info.filename} is compressed; torch.save stores them plainly")
            f.seek(info.header_offset)
            header = f.read(30)
            if len(header) < 30 or header[:4] != b"PK\x03\x04":
                raise CheckpointError(f"{path} is damaged: no local header for {info.filename}")
            name_len, extra_len = struct.unpack_from("<HH", header, 26)
            records[info.filename] = (info.header_offset + 30 + name_len + extra_len, info.file_size)
    return records


def read_checkpoint(path: str | Path) -> Any:
    """Everything ``torch.save`` put in ``path``, read by the restricted unpickler (module docstring): tensors are
    memory-mapped, objects of unknown classes are ``Placeholder`` s. Raises ``UnsafeCheckpoint`` for a pickle that
    names code to run, ``CheckpointError`` for a missing, truncated or otherwise unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a complete PyTorch checkpoint (no zip archive: the download was cut "
                              "short, or it is another kind of file) — delete it and download it again")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{path} is a zip archive but not one torch.save wrote (no <name>/data.pkl)")
            prefix = pickles[0].split("/")[0]
            byteorder = f"{prefix}/byteorder"
            if byteorder in archive.namelist() and archive.read(byteorder) != b"little":
                raise CheckpointError(f"{path} was written on a big-endian machine; only little-endian is read")
            records = _records(path, archive)
            with archive.open(pickles[0]) as stream:
                return _RestrictedUnpickler(stream, path, records, prefix).load()
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 — any failure inside the archive or the pickle is a damaged file
        raise CheckpointError(f"{path} could not be read ({type(err).__name__}: {str(err)[:200]}) — delete it and "
                              "download it again") from err


def ema_state_dict(path: str | Path, prefix: str = EMA_PREFIX) -> dict[str, torch.Tensor]:
    """The checkpoint's ``state_dict`` entries under ``prefix`` (the course's EMA weights), prefix stripped: plain
    memory-mapped tensors, nothing else (``UnsafeCheckpoint`` if any is not a tensor)."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state_dict: not a Lightning checkpoint")
    kept = {key.removeprefix(prefix): value for key, value in state.items()
            if isinstance(key, str) and key.startswith(prefix)}
    if not kept:
        prefixes = sorted({str(key).split(".")[0] + "." for key in state})
        raise CheckpointError(f"{path} holds no {prefix}* weights (its state_dict has {', '.join(prefixes) or 'none'})")
    for key, value in kept.items():
        if type(value) is not torch.Tensor:
            raise UnsafeCheckpoint(f"{path}: {prefix}{key} is {value!r}, not a tensor — refused")
    return kept

"""Tensors over HTTP between the app and the model server: safetensors bytes, never pickle.

A message is a safetensors file held in memory: named tensors plus a flat ``str → str`` metadata dict (the model, a
timestep list, …). ``unpack`` reads the header first — a little-endian u64 length, then JSON naming each tensor's
dtype, shape and byte range — and refuses a message before allocating anything when it is larger than the cap, names
a dtype outside ``ALLOWED_DTYPES``, or its byte ranges do not add up; only then does safetensors parse it.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

CONTENT_TYPE = "application/vnd.safetensors"
MAX_MESSAGE_BYTES = 256 * 2**20  # an IF-I-XL request of 16 rows in fp16 is ≈ 20 MB (the (77, 4096) conditions dominate)
ALLOWED_DTYPES = {"F16", "BF16", "F32", "F64", "I64"}


class BadMessage(ValueError):
    """A message that is not a well-formed, acceptable safetensors file (its text is safe to send back)."""


def pack(tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> bytes:
    """Named tensors (any device) and string metadata → safetensors bytes."""
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta or {})


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """safetensors bytes → (tensors on the CPU, metadata), or ``BadMessage`` saying what is wrong."""
    if len(data) > max_bytes:
        raise BadMessage(f"message of {len(data):,} bytes is over the {max_bytes:,}-byte cap")
    if len(data) < 8:
        raise BadMessage("not a safetensors message (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise BadMessage("not a safetensors message (header longer than the message)")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadMessage(f"not a safetensors message (header is not JSON: {err})") from None
    if not isinstance(header, dict):
        raise BadMessage("not a safetensors message (header is not an object)")
    meta = header.pop("__metadata__", None) or {}
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in ALLOWED_DTYPES:
            raise BadMessage(f"tensor {name!r}: dtype {info.get('dtype') if isinstance(info, dict) else '?'} is not "
                             f"one of {', '.join(sorted(ALLOWED_DTYPES))}")
    try:
        tensors = st_load(data)
    except Exception as err:  # noqa: BLE001 — safetensors' own check of the byte ranges
        raise BadMessage(f"malformed safetensors message: {err}") from None
    return tensors, {str(k): str(v) for k, v in meta.items()}

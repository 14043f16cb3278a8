"""T5-XXL prompt embeddings for DeepFloyd IF, computed once per prompt and kept on disk.

IF conditions on the last hidden state of T5-v1.1-XXL for the prompt, padded/truncated to 77 tokens: a (1, 77, 4096)
tensor. The encoder is 4.76 B parameters (10.7 GiB on a GPU), so — like the course, which ships the embeddings
precomputed — it runs only for prompts that are not cached yet (lib.backends.if_loading.T5Encoder; lib.backends.if_memory says where).

Cache entry: ``<folder>/<sha256(model_id + "\\n" + prompt)>.safetensors`` written with ``lib.train.cache.save_entry`` (atomic,
digest-verified); a corrupt entry is recomputed. The key holds the text-encoder repository and the prompt only — never a
token. All IF-I variants (XL, L, M) share the same T5 encoder, so one cache serves them all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from lib import PROJECT_ROOT
from lib.train.cache import CorruptEntry, load_entry, save_entry
from lib.backends.if_configs import T5_REPO

MAX_TOKENS = 77  # IF's text encoder was trained with 77-token prompts
EMBEDDINGS_DIR = Path(os.environ.get("DIFFUSION_LAB_EMBEDDINGS") or PROJECT_ROOT / "data" / "embeddings")

# encode_fn(prompts) -> (len(prompts), 77, 4096)
EncodeFn = Callable[[list[str]], torch.Tensor]


class PromptEmbeddingCache:
    """``get(prompt)`` → (1, 77, D) embedding: from memory, else from disk, else ``encode_fn`` (then saved).

    ``hits`` / ``misses`` count prompts served from memory or disk / computed by ``encode_fn``.
    """

    def __init__(self, folder: str | Path = EMBEDDINGS_DIR, encode_fn: EncodeFn | None = None, model_id: str = T5_REPO):
        self.folder = Path(folder)
        self.encode_fn = encode_fn
        self.model_id = model_id
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, torch.Tensor] = {}

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.model_id}\n{prompt}".encode()).hexdigest()

    def path(self, prompt: str) -> Path:
        return self.folder / f"{self.key(prompt)}.safetensors"

    def _load(self, prompt: str) -> torch.Tensor | None:
        try:
            tensors, meta = load_entry(self.path(prompt))
        except (FileNotFoundError, CorruptEntry):
            return None
        if meta.get("prompt") != prompt or meta.get("model_id") != self.model_id or "embedding" not in tensors:
            return None
        return tensors["embedding"]

    def get_many(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N, 77, D) embeddings of ``prompts``; all prompts not cached yet are encoded in ONE ``encode_fn`` call
        (so the text encoder is loaded at most once per call)."""
        found: dict[str, torch.Tensor] = {}
        missing: list[str] = []
        for p in prompts:
            emb = self._memory.get(p)
            if emb is None:
                emb = self._load(p)
            if emb is None:
                if p not in missing:
                    missing.append(p)
                continue
            self.hits += 1
            found[p] = self._memory[p] = emb
        if missing:
            if self.encode_fn is None:
                raise LookupError(f"{len(missing)} prompt(s) are not cached and no text encoder is available")
            embs = self.encode_fn(missing)
            if embs.shape[0] != len(missing):
                raise ValueError(f"encode_fn returned {embs.shape[0]} embeddings for {len(missing)} prompts")
            for p, emb in zip(missing, embs):
                emb = emb.unsqueeze(0).detach().cpu().contiguous()
                save_entry(self.path(p), {"embedding": emb}, {"prompt": p, "model_id": self.model_id})
                self.misses += 1
                found[p] = self._memory[p] = emb
        return torch.cat([found[p] for p in prompts])

    def get(self, prompt: str) -> torch.Tensor:
        """The (1, 77, D) embedding of one prompt."""
        return self.get_many([prompt])

"""T5-XXL prompt embeddings for DeepFloyd IF, computed once per prompt and kept on disk.

IF conditions on the last hidden state of T5-v1.1-XXL for the prompt, padded/truncated to 77 tokens: a (1, 77, 4096)
tensor. The encoder is ~4.7 B parameters (~9.5 GB in fp16), far too big to keep next to the UNet, so — like the course,
which ships the embeddings precomputed — it is loaded only to embed prompts that are not cached yet and freed again.

Cache entry: ``<folder>/<sha256(model_id + "\\n" + prompt)>.safetensors`` written with ``lib.cache.save_entry`` (atomic,
digest-verified); a corrupt entry is recomputed. The key holds the text-encoder repository and the prompt only — never a
token. All IF-I variants (XL, L, M) share the same T5 encoder, so one cache serves them all.
"""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch

from lib.cache import CorruptEntry, load_entry, save_entry

T5_REPO = "DeepFloyd/IF-I-XL-v1.0"  # holds text_encoder/ (T5-v1.1-XXL) and tokenizer/ for every IF-I variant
MAX_TOKENS = 77  # IF's text encoder was trained with 77-token prompts
EMBEDDINGS_DIR = Path(__file__).resolve().parent.parent / "data" / "embeddings"

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


def t5_encode_fn(token: str | None, device: torch.device | str = "cuda", model_id: str = T5_REPO) -> EncodeFn:
    """An ``encode_fn`` that loads IF's T5 tokenizer + encoder (``model_id``, subfolders tokenizer/ and text_encoder/,
    fp16 weights on CUDA) for each call, embeds the prompts exactly as ``IFPipeline.encode_prompt`` does
    (lower-cased, stripped, padded to 77 tokens, with the attention mask) and frees the encoder again.

    Hub failures are raised as ``lib.deepfloyd.IFUnavailable``. The token lives only in this closure.
    """
    device = torch.device(device)

    def encode(prompts: list[str]) -> torch.Tensor:
        from transformers import AutoTokenizer, T5EncoderModel

        from lib.deepfloyd import from_hub

        dtype = torch.float16 if device.type == "cuda" else torch.float32
        tokenizer = from_hub(AutoTokenizer.from_pretrained, model_id, token, subfolder="tokenizer")
        encoder = from_hub(T5EncoderModel.from_pretrained, model_id, token, subfolder="text_encoder",
                           variant="fp16", torch_dtype=dtype)
        try:
            encoder = encoder.to(device).eval()
            inputs = tokenizer([p.lower().strip() for p in prompts], padding="max_length", max_length=MAX_TOKENS,
                               truncation=True, add_special_tokens=True, return_tensors="pt")
            with torch.no_grad():
                out = encoder(inputs.input_ids.to(device), attention_mask=inputs.attention_mask.to(device))[0]
            return out.cpu()
        finally:
            del encoder
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    return encode

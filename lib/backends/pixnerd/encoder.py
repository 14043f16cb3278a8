"""The flow edition's prompt encoder: Qwen/Qwen3-1.7B turns a prompt into the (1, 128, 2048) condition of
PixNerd-XXL-P16-T2I, as the course's adapter does, and the results are kept on disk per prompt.

What the course does, and so what this does (../shared/spec/flow_edition.md §1, §6):

* the base ``Qwen3Model`` (no LM head) at revision ``REVISION``, with the ``Qwen2Tokenizer`` (byte-level BPE) of the
  same snapshot; fp32 by default (the course's choice; bf16 halves the memory and changes the values a little);
* the prompt tokenized as it is — no chat template, no BOS/EOS (the Qwen2 tokenizer adds none) — then right-padded
  with the pad token ``<|endoftext|>`` or truncated, to ``MAX_TOKENS`` = 128 tokens; the attention mask is passed;
* the embedding is the ``last_hidden_state``, all 128 rows. The denoiser attends to every row, padding included
  (it gets no mask), so what the padding rows hold is part of the condition: with right padding and causal
  attention, the prompt's own rows never see the padding, and each padding row is the pad token at its position
  attending to the prompt's tokens only (the mask hides the other pads);
* ``""`` — the unconditional prompt of classifier-free guidance — has zero tokens, so its 128 rows are pads that may
  attend to nothing. transformers' default attention (SDPA) now returns zeros for such rows (seen on the CPU; GPU
  kernels may differ again), while the course's pinned transformers (4.51.3) attended to all of them (an additive
  mask: uniform weights; on CUDA the fully masked rows are unmasked). The pads being identical, the course's rows are
  therefore all equal to the embedding of a lone ``<|endoftext|>``. The model runs with eager attention, which does
  the same — the course's ``""`` on every device (tests/test_qwen_encoder.py shows both) — at no noticeable cost:
  attention is ≈ 1 % of the work at 128 tokens.

Memory and time: 1,720,574,976 parameters without the LM head (counted from the real configuration,
``lib.backends.pixnerd.qwen_config``): 6.41 GiB in fp32, 3.20 GiB in bf16, plus ≈ 10 MiB of activations per prompt in a
batch. A prompt costs ≈ 0.36 TFLOP (2 × 1.41 B non-embedding parameters × 128 tokens): estimated well under a second
on a GPU, seconds to tens of seconds on a CPU depending on its cores. It runs on the GPU next to the denoiser (the
default when there is one) or on the CPU (RAM instead of GPU memory). Embeddings are cached, so it only runs for
prompts nobody used yet.

Weights come from the Hugging Face hub (public: ``HF_TOKEN`` is used if set, never required) or from a folder of
snapshots (``DIFFUSION_LAB_PIXNERD_DIR``) holding ``Qwen/Qwen3-1.7B/`` next to the denoiser's
``MCG-NJU/PixNerd-XXL-P16-T2I/``, as ``hf download … --local-dir`` writes them. Safetensors only, never remote code:
the classes are named here, not looked up in the snapshot. Every failure becomes a ``QwenUnavailable`` whose message
says how to fix it; the token never appears in a message, a log, a cache key or a file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lib.backends import prompt_cache
from lib.backends import hub
from lib.backends.prompt_cache import PromptEmbeddingCache

REPO = "Qwen/Qwen3-1.7B"
REVISION = "70d244cc86ccca08cf5af4e1e306ecf908b1ad5e"  # the course's pin (spec §1)
MAX_TOKENS = 128  # PixNerd-XXL-P16-T2I's txt_max_length
DIR_ENV = "DIFFUSION_LAB_PIXNERD_DIR"
DTYPES = (torch.float32, torch.bfloat16)  # fp16 is not offered: Qwen3 was trained in bf16 and overflows in fp16
EMBEDDINGS_SUBDIR = "qwen3-1.7b"  # its own folder under lib.backends.prompt_cache.EMBEDDINGS_DIR, apart from IF's T5 entries

NO_NETWORK = hub.no_network_message(f"the prompt encoder {REPO} is", DIR_ENV)


def snapshot_missing_message(folder: Path) -> str:
    return hub.snapshot_missing_message(DIR_ENV, folder, REPO, "config.json", revision=REVISION)


class QwenUnavailable(Exception):
    """The prompt encoder cannot be loaded here; the message says what is missing and how to fix it (never the
    token)."""


@dataclass(frozen=True)
class QwenSource:
    """Where Qwen3-1.7B comes from: the hub at ``REVISION`` (with ``token`` if one is set), or the snapshot under
    ``folder`` (which must hold that revision: ``hf download --revision``)."""

    token: str | None = None
    folder: Path | None = None

    def load(self, loader: Callable, **kwargs):
        """``loader(location, **kwargs)`` (a ``from_pretrained``), every failure raised as ``QwenUnavailable``."""
        if self.folder is not None:
            if not (self.folder / REPO / "config.json").is_file():
                raise QwenUnavailable(snapshot_missing_message(self.folder))
            location, kwargs = str(self.folder / REPO), dict(kwargs, local_files_only=True)
        else:
            location, kwargs = REPO, dict(kwargs, revision=REVISION, token=self.token)
        try:
            return loader(location, **kwargs)
        except torch.cuda.OutOfMemoryError as err:
            raise QwenUnavailable(hub.out_of_memory_message(REPO)) from err
        except Exception as err:  # noqa: BLE001 — the loading boundary: every failure becomes a message for the user
            if self.folder is not None:
                raise QwenUnavailable(hub.folder_failure_message(REPO, location, err)) from None
            raise QwenUnavailable(hub.download_problem(err, REPO, self.token, NO_NETWORK)) from None


def qwen_source(token: str | None = None, folder: str | Path | None = None) -> QwenSource:
    """The source the settings select: ``folder`` (or ``DIFFUSION_LAB_PIXNERD_DIR``) if given, else the hub with
    ``token`` (or ``HF_TOKEN``, or anonymously: the repository is public)."""
    folder = folder or os.environ.get(DIR_ENV) or None
    if folder:
        return QwenSource(folder=Path(folder).expanduser())
    return QwenSource(token=token or os.environ.get("HF_TOKEN") or None)


def cache_identity(dtype: torch.dtype) -> str:
    """What an embedding depends on besides its prompt — repository, revision, length, dtype — hashed with the prompt
    into its cache key (``PromptEmbeddingCache`` takes it as its ``model_id``)."""
    return f"{REPO}@{REVISION} max_tokens={MAX_TOKENS} dtype={str(dtype).removeprefix('torch.')}"


class QwenEncoder:
    """Qwen3-1.7B's tokenizer and base model, loaded at the first ``encode`` and kept for the next ones.

    One batch at a time (a lock): sessions that ask at once queue, the first loads the model and the others reuse it,
    and the tokenizer (not thread-safe) is never used by two threads together. ``loads`` counts the loads.
    """

    def __init__(self, src: QwenSource | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32):
        if dtype not in DTYPES:
            raise ValueError(f"the prompt encoder runs in float32 (the course's choice) or bfloat16, not {dtype}")
        self.src = src or qwen_source()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        self.loads = 0
        self._lock = threading.Lock()
        self._parts = None

    def _load(self):
        from transformers import Qwen2Tokenizer, Qwen3Model

        tokenizer = self.src.load(Qwen2Tokenizer.from_pretrained, padding_side="right", truncation_side="right")
        model = self.src.load(Qwen3Model.from_pretrained, dtype=self.dtype, device_map=self.device,
                              use_safetensors=True, attn_implementation="eager")
        self.loads += 1
        return tokenizer, model.eval()

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """(len(prompts), 128, hidden) embeddings on the CPU in the encoder's dtype: each prompt right-padded with
        ``<|endoftext|>`` or truncated to 128 tokens; ``""`` gives 128 pads (see the module's docstring)."""
        with self._lock:
            if self._parts is None:
                self._parts = self._load()
            tokenizer, model = self._parts
            inputs = tokenizer(list(prompts), padding="max_length", max_length=MAX_TOKENS, truncation=True,
                               return_tensors="pt")
            with torch.no_grad():
                out = model(input_ids=inputs.input_ids.to(self.device),
                            attention_mask=inputs.attention_mask.to(self.device), use_cache=False)
            return out.last_hidden_state.cpu()


def qwen_prompt_cache(encoder: QwenEncoder, folder: str | Path | None = None) -> PromptEmbeddingCache:
    """Embeddings of ``encoder``'s settings, computed once per prompt and kept in ``folder`` (default
    ``<lib.backends.prompt_cache.EMBEDDINGS_DIR>/qwen3-1.7b``) — ``get(prompt)`` → (1, 128, hidden), ``get_many(prompts)`` →
    (N, 128, hidden), the new prompts of a call encoded in one batch. Entries are atomic and verified
    (``lib.train.cache``), and a corrupt one is recomputed."""
    folder = Path(folder) if folder is not None else prompt_cache.EMBEDDINGS_DIR / EMBEDDINGS_SUBDIR
    return PromptEmbeddingCache(folder, encoder.encode, model_id=cache_identity(encoder.dtype))

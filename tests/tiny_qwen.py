"""Qwen3-1.7B at toy size, with random weights, for tests: the real transformers classes, no GPU, no download.

``write_tiny_qwen_snapshot`` writes a stand-in of the hub repository ``Qwen/Qwen3-1.7B`` in its exact file layout —
config.json and generation_config.json in the repository's own (transformers 4.51) format, the weights of a
``Qwen3ForCausalLM`` with tied embeddings in bf16 as two safetensors shards plus their index, and the byte-level BPE
tokenizer as vocab.json + merges.txt + tokenizer.json + tokenizer_config.json (a BPE trained here on a few words, with
Qwen's special tokens after the vocabulary) — for the production loader (lib.backends.pixnerd.encoder) to load by path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lib.backends.pixnerd.encoder import REPO

WORDS = ("a an the of photo oil painting snowy mountain village man old high quality lithograph skull campfire "
         "people around horse rocket launch pad").split()
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # Qwen's first three, in its order: pad/BOS, chat
TINY_VOCAB = 384  # the embedding has spare rows past the tokenizer's ids, as the real one does (151,936 > 151,669)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, max_position_embeddings=256)


def tiny_qwen3(seed: int = 0, bos_token_id: int | None = None, eos_token_id: int | None = None):
    """A random ``Qwen3ForCausalLM`` at toy width, tied embeddings, rounded to bf16 (the real checkpoint's dtype):
    the same weights for the same seed."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=TINY_VOCAB, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                         bos_token_id=bos_token_id, eos_token_id=eos_token_id, **TINY)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen3ForCausalLM(config).to(torch.bfloat16).eval()


def write_tiny_tokenizer(folder: Path) -> dict[str, int]:
    """vocab.json, merges.txt, tokenizer_config.json (the real one's fields) and tokenizer.json (what transformers'
    ``Qwen2Tokenizer`` builds from the other three, as the hub ships it). Returns the special tokens' ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator([" " + " ".join(WORDS)] * 20, trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    model = json.loads(bpe.to_str())["model"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in model["merges"]))
    ids = {token: len(model["vocab"]) + i for i, token in enumerate(SPECIAL_TOKENS)}
    added = {str(i): dict(content=t, lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
             for t, i in ids.items()}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": SPECIAL_TOKENS[1:], "bos_token": None, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}, indent=2))
    Qwen2Tokenizer.from_pretrained(folder).backend_tokenizer.save(str(folder / "tokenizer.json"))
    return ids


def write_tiny_qwen_snapshot(root: Path, seed: int = 0) -> Path:
    """``root/Qwen/Qwen3-1.7B/`` as ``hf download Qwen/Qwen3-1.7B --local-dir`` writes it, at toy size. Returns
    ``root`` (what ``DIFFUSION_LAB_PIXNERD_DIR`` points at)."""
    folder = root / REPO
    ids = write_tiny_tokenizer(folder)
    bos, eos = ids["<|endoftext|>"], ids["<|im_end|>"]
    model = tiny_qwen3(seed, bos, eos)
    model.save_pretrained(folder, max_shard_size="40KB")
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], shards
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": bos,
        "eos_token_id": eos, "hidden_act": "silu", "initializer_range": 0.02, "max_window_layers": 28,
        "model_type": "qwen3", "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
        "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False, "vocab_size": TINY_VOCAB,
        **TINY}, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({
        "bos_token_id": bos, "do_sample": True, "eos_token_id": [eos, bos], "pad_token_id": bos, "temperature": 0.6,
        "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}, indent=2))
    return root

"""Qwen3-1.7B, PixNerd's prompt encoder: its repository, the revision the course pins and its real configuration,
declared once — for the encoder's loader and for the memory plan (lib.pixnerd.memory), which builds it on the meta
device to count its parameters.

The course loads it as a base ``Qwen3Model`` (no LM head; its input embedding is the tied one) and uses the last hidden
state of the prompt, right-padded or truncated to 128 tokens: (1, 128, 2048), PixNerd's ``txt_max_length`` ×
``txt_embed_dim`` (flow edition §1, §6).
"""

from __future__ import annotations

QWEN_REPO = "Qwen/Qwen3-1.7B"
QWEN_REVISION = "70d244cc86ccca08cf5af4e1e306ecf908b1ad5e"


def qwen3_1_7b_config():
    """The ``transformers.Qwen3Config`` of Qwen/Qwen3-1.7B (its config.json's values)."""
    from transformers import Qwen3Config

    return Qwen3Config(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                       tie_word_embeddings=True, rope_theta=1_000_000, rms_norm_eps=1e-6)

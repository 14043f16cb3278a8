"""The real configuration of Qwen/Qwen3-1.7B (its ``config.json`` at the course's revision), without weights: what
the memory figures count on PyTorch's meta device and what real-size benchmarks build with random weights."""

from __future__ import annotations

from transformers import Qwen3Config


def qwen3_1_7b_config() -> Qwen3Config:
    """Qwen3-1.7B: 28 layers of width 2048, grouped-query attention (16 query heads, 8 key/value heads of 128),
    SwiGLU MLPs of 6144, a 151,936-token vocabulary whose embedding is tied to the (unused) LM head."""
    return Qwen3Config(
        hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
        head_dim=128, vocab_size=151936, max_position_embeddings=40960, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=True,
    )

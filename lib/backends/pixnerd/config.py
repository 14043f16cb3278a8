"""PixNerd's configurations and where the released one lives: the constructor arguments of the text-to-image
denoiser, declared once, and the hub file the course loads (flow edition §1, §6).

The XXL configuration is the released ``MCG-NJU/PixNerd-XXL-P16-T2I`` (1,171,518,019 parameters); TINY is the
instance of ``../shared/golden/pixnerd`` (tiny.json), whose weights and outputs pin the forward pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REPO = "MCG-NJU/PixNerd-XXL-P16-T2I"
MODEL_NAME = REPO.split("/")[1]  # what the app, the model server and their messages call it
REVISION = "9fa8836b553976b88a3b27649ed1628499e02bf9"  # the commit the course pins
CHECKPOINT_FILE = "model.ckpt"  # a Lightning checkpoint; the course keeps its ema_denoiser.* weights
IMAGE_SIZE = 512  # the resolution the model generates at, in RGB pixels (no VAE)


@dataclass(frozen=True)
class PixNerdConfig:
    """The denoiser's constructor arguments (the reference's names): C, p, G, H, Dy, L, Nt, Dd, Ne, Nd of
    ``ARCHITECTURE.md``. Head width h = hidden_size / num_groups."""

    in_channels: int
    patch_size: int
    num_groups: int
    hidden_size: int
    txt_embed_dim: int
    txt_max_length: int
    num_text_blocks: int
    decoder_hidden_size: int
    num_encoder_blocks: int
    num_decoder_blocks: int

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_groups


XXL = PixNerdConfig(in_channels=3, patch_size=16, num_groups=24, hidden_size=1536, txt_embed_dim=2048,
                    txt_max_length=128, num_text_blocks=4, decoder_hidden_size=64, num_encoder_blocks=16,
                    num_decoder_blocks=2)
TINY = PixNerdConfig(in_channels=3, patch_size=4, num_groups=4, hidden_size=64, txt_embed_dim=32, txt_max_length=8,
                     num_text_blocks=2, decoder_hidden_size=16, num_encoder_blocks=2, num_decoder_blocks=2)


def model_label(config: PixNerdConfig) -> str:
    """What the app and the model server call a PixNerd of ``config``: the released model's name for the XXL, else
    its shape — a snapshot folder may hold another PixNerd (a smaller release, the tests' tiny one), which is not the
    XXL and must not be called so."""
    if config == XXL:
        return MODEL_NAME
    return (f"PixNerd-P{config.patch_size} (width {config.hidden_size}, {config.num_encoder_blocks} + "
            f"{config.num_decoder_blocks} blocks; not the released XXL)")


class NotPixNerdWeights(ValueError):
    """Weights whose names and shapes describe no PixNerd text-to-image denoiser."""


def config_from_weights(shapes: Mapping[str, Sequence[int]]) -> PixNerdConfig:
    """The configuration that state-dict ``shapes`` (key → shape, the ``ema_denoiser.`` prefix stripped) describe, as
    a diffusers snapshot's config.json describes its UNet — the checkpoint holds none. Each argument is read where
    ``ARCHITECTURE.md`` puts it: y_pos_embedding (1, Nt, H); y_embedder.proj (H, Dy); final_layer.linear (C, Dd);
    s_embedder.proj (H, C·p²); the heads' q_norm (h) with G = H / h; and the counts of text_refine_blocks and of the
    encoder (attn) and decoder (param_generator1) blocks. ``NotPixNerdWeights`` names what is missing or inconsistent;
    the strict load that follows checks every other shape."""
    def shape(key: str) -> Sequence[int]:
        if key not in shapes:
            raise NotPixNerdWeights(f"no {key} among the weights: not a PixNerd text-to-image denoiser")
        return shapes[key]

    def count(pattern: str) -> int:
        return len({m.group(1) for key in shapes if (m := re.fullmatch(pattern, key))})

    _, txt_max_length, hidden = shape("y_pos_embedding")
    in_channels, decoder_hidden = shape("final_layer.linear.weight")
    patch_size = math.isqrt(shape("s_embedder.proj.weight")[1] // in_channels)
    head_dim = shape("blocks.0.attn.q_norm.weight")[0]
    if patch_size ** 2 * in_channels != shape("s_embedder.proj.weight")[1] or hidden % head_dim:
        raise NotPixNerdWeights(f"s_embedder.proj {list(shapes['s_embedder.proj.weight'])} and q_norm ({head_dim}) do "
                                f"not fit a PixNerd of width {hidden} on {in_channels} channels")
    return PixNerdConfig(in_channels=in_channels, patch_size=patch_size, num_groups=hidden // head_dim,
                         hidden_size=hidden, txt_embed_dim=shape("y_embedder.proj.weight")[1],
                         txt_max_length=txt_max_length, num_text_blocks=count(r"text_refine_blocks\.(\d+)\..*"),
                         decoder_hidden_size=decoder_hidden, num_encoder_blocks=count(r"blocks\.(\d+)\.attn\..*"),
                         num_decoder_blocks=count(r"blocks\.(\d+)\.param_generator1\..*"))

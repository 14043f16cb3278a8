"""PixNerd's configurations and where the released one lives: the constructor arguments of the text-to-image
denoiser, declared once, and the hub file the course loads (flow edition §1, §6).

The XXL configuration is the released ``MCG-NJU/PixNerd-XXL-P16-T2I`` (1,171,518,019 parameters); TINY is the
instance of ``../shared/golden/pixnerd`` (tiny.json), whose weights and outputs pin the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

REPO = "MCG-NJU/PixNerd-XXL-P16-T2I"
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

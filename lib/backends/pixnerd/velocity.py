"""PixNerd behind the flow edition's velocity-model interface (the protocol of lib.flow, matched structurally):
``name``, ``image_shape``, ``value_range``, ``device``, ``dtype``; ``velocity(x_t, t, cond)`` → dx/dt; ``encode_prompt(prompt)`` and
``null_condition()`` → text embeddings.

As the course's ``predict_velocity``: x_t in model units ([-1, 1], RGB, 512 × 512), t ∈ [0, 1] with t = 0 pure noise,
the network run in its weights' dtype (float32, the course's choice) with autocast disabled, and its output returned
as is — dx/dt, no sign flip — in float32, the dtype of the sampling state. Prompts are embedded by an injected
encoder (Qwen3-1.7B's last hidden state, padded to 128 tokens: (B, 128, 2048)); the null condition, the embedding of
"", is computed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from lib.backends.pixnerd.config import IMAGE_SIZE, model_label
from lib.backends.pixnerd.model import PixNerdTransformer

# encode(prompts) -> (len(prompts), txt_max_length, txt_embed_dim)
EncodeFn = Callable[[list[str]], torch.Tensor]


class PixNerdVelocity:
    """A loaded ``PixNerdTransformer`` plus a prompt encoder, as a velocity model."""

    dtype = torch.float32  # of x_t and of the returned velocity; the weights' own is ``model_dtype``
    value_range = (-1.0, 1.0)  # model units: the images' pixel range

    def __init__(self, model: PixNerdTransformer, encode: EncodeFn, *, name: str | None = None,
                 image_size: int = IMAGE_SIZE):
        self.model = model.eval()
        self.encode = encode
        self.name = name or model_label(model.config)  # the released XXL's name only for the XXL
        self.image_shape = (model.config.in_channels, image_size, image_size)
        weight = model.y_pos_embedding  # read once: every parameter shares its device and dtype
        self.device, self.model_dtype = weight.device, weight.dtype
        self._null: torch.Tensor | None = None

    @torch.no_grad()
    def velocity(self, x_t: torch.Tensor, t: float | torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """dx/dt at x_t (B, C, H, W) and time t (a number, or (B,)), conditioned on cond (B or 1, L, Dy; one row is
        shared by the whole batch): one forward pass, autocast off, float32 out."""
        batch = x_t.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).expand(batch)
        cond = cond.to(self.device, self.model_dtype).expand(batch, -1, -1)
        with torch.autocast(self.device.type, enabled=False):
            out = self.model(x_t.to(self.device, self.model_dtype), t, cond)
        return out.float()

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """The (1, L, Dy) embedding of ``prompt`` on the model's device."""
        emb = self.encode([prompt])
        cfg = self.model.config
        if tuple(emb.shape) != (1, cfg.txt_max_length, cfg.txt_embed_dim):
            raise ValueError(f"the prompt encoder returned {tuple(emb.shape)}, PixNerd reads (1, {cfg.txt_max_length}, "
                             f"{cfg.txt_embed_dim}) per prompt")
        return emb.to(self.device)

    def null_condition(self) -> torch.Tensor:
        """The embedding of the empty prompt "" (the unconditional branch of CFG, as in the course)."""
        if self._null is None:
            self._null = self.encode_prompt("")
        return self._null


def load_pixnerd_velocity(device: torch.device | str, token: str | None = None,
                          folder: str | Path | None = None) -> PixNerdVelocity:
    """PixNerd (``lib.backends.pixnerd.hub.load_pixnerd``: the hub's PixNerd-XXL-P16-T2I with ``token``, or the one in
    the snapshot ``folder`` / DIFFUSION_LAB_PIXNERD_DIR; a GPU that fits it) on ``device``, with its Qwen3-1.7B prompt
    encoder from the same place beside it (on the same GPU where the memory plan keeps it there, else on the
    CPU), each prompt's embedding computed once and kept on disk
    (``qwen_prompt_cache``). The encoder is loaded now (by embedding "", the unconditional prompt), so that whatever
    stands in its way is raised here, as ``QwenUnavailable``, not at a page's first prompt. What the model server
    and the flow pages run."""
    from lib.backends.pixnerd.encoder import QwenEncoder, qwen_prompt_cache, qwen_source
    from lib.backends.pixnerd.hub import load_pixnerd, source
    from lib.backends.pixnerd.memory import encoder_device

    net = load_pixnerd(source(token, folder), device)
    encoder = QwenEncoder(qwen_source(token, folder), device=encoder_device(device))
    model = PixNerdVelocity(net, qwen_prompt_cache(encoder).get_many)
    model.null_condition()
    return model

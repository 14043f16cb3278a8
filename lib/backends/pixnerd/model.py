"""The PixNerd text-to-image denoiser (PixNerd-XXL-P16-T2I), written from ``../shared/golden/pixnerd/ARCHITECTURE.md``.

A pixel-space flow model: time runs from t = 0 (pure noise) to t = 1 (the image), x_t = (1 − t)·ε + t·x₁, and the
network returns the velocity dx/dt. Its parts, for an image x (B, C, Hh, Ww), times t (B,) and text embeddings
y (B, L, Dy):

1. patches: ``unfold(x, p, stride p)`` → (B, N, C·p²), each patch vector ordered (channel, row, col);
2. time: e = [cos(t·φ), sin(t·φ)], φ_k = exp(−ln(10)·k/128), k = 0 … 127 (a maximal period of 10, not 10,000);
   τ = W₂·silu(W₁·e) (B, 1, H); the blocks' condition is c = silu(τ);
3. text: y ← RMSNorm(W_y·y) + P_y, then ``num_text_blocks`` adaLN self-attention blocks conditioned on c;
4. encoder: s = W_s·patches, then ``num_encoder_blocks`` adaLN blocks whose attention joins the image tokens (2-D
   rotary positions on q and k) with the refined text tokens (keys and values only);
5. per-patch condition s ← silu(τ + s);
6. neural field: every pixel of a patch, [its C values, the real part of rope(128, p, p) at its place] → Dd features,
   then ``num_decoder_blocks`` MLPs whose weights the patch's condition generates:
   x ← x + silu(RMSNorm(x)·A)·Bm, A (Dd × 2Dd, unit columns) and Bm (2Dd × Dd) from W_g·s;
7. output: a linear map per pixel (Dd → C), folded back into (B, C, Hh, Ww).

Module and parameter names are the released checkpoint's (``xxl_keys.json``): ``blocks.0`` … ``blocks.Ne−1`` are the
encoder, ``blocks.Ne`` … the neural-field decoder. RMSNorm and the rotary products compute in float32 whatever the
weights' dtype; attention is PyTorch's ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lib.backends.pixnerd.config import PixNerdConfig

RMS_EPS = 1e-6
ROPE_BASE = 10000.0
TIME_FREQUENCIES = 128  # e has 2 × 128 entries: the time embedder's input width is 256
TIME_MAX_PERIOD = 10.0  # t ∈ [0, 1], not a step index: the reference's period is 10
PIXEL_CODE_DIM = 128  # rope(128, p, p): 64 complex entries per pixel, whose real parts are its positional code


class RMSNorm(nn.Module):
    """w ⊙ x / sqrt(mean(x², last dim) + 1e-6), computed in float32 and cast back to x's dtype."""

    def __init__(self, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return (self.weight.float() * normed).to(x.dtype)


class SwiGLU(nn.Module):
    """[a, b] = split(w12·x) (4H each); w3·(silu(a) ⊙ b). No biases."""

    def __init__(self, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.w12 = nn.Linear(dim, 8 * dim, bias=False, dtype=dtype)
        self.w3 = nn.Linear(4 * dim, dim, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x ⊙ (1 + scale) + shift."""
    return x * (1 + scale) + shift


def rope_table(dim: int, n_rows: int, n_cols: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The 2-D rotary table, (n_rows·n_cols, dim/2) complex64, tokens in row-major order (index r·n_cols + c).

    Frequencies f_k = 10000^(−4k/dim), k = 0 … dim/4 − 1. The token at row r, column c sits at
    x = linspace(0, n_rows, n_cols)[c] and y = linspace(0, n_cols, n_rows)[r] (the end points are crossed; for a
    square grid both are linspace(0, n, n)); its entries are e^{i·x·f_0}, e^{i·y·f_0}, e^{i·x·f_1}, e^{i·y·f_1}, ….
    """
    freqs = 1.0 / (ROPE_BASE ** (torch.arange(0, dim, 4, device=device)[: dim // 4].float() / dim))
    xs = torch.linspace(0, n_rows, n_cols, device=device)
    ys = torch.linspace(0, n_cols, n_rows, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    angles = torch.stack([x.reshape(-1, 1) * freqs, y.reshape(-1, 1) * freqs], dim=-1).flatten(1)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, N, G, h) by the table (N, h/2): the pairs (x_2j, x_2j+1) are the complex numbers x_2j + i·x_2j+1
    (interleaved, not "rotate-half"), multiplied by the token's j-th entry in float32 and split back the same way."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * table[:, None, :]).flatten(-2).to(x.dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√h)·v per head, no mask: (B, Tq, G, h) queries, (B, Tk, G, h) keys and values → (B, Tq, G·h)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    """The text blocks' attention: ``qkv`` (H → 3H, q then k then v, each G consecutive heads of width h),
    RMSNorm on q and k, no rotary, ``proj`` (H → H)."""

    def __init__(self, dim: int, heads: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False, dtype=dtype)
        self.q_norm = RMSNorm(dim // heads, dtype)
        self.k_norm = RMSNorm(dim // heads, dtype)
        self.proj = nn.Linear(dim, dim, dtype=dtype)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(y).unflatten(-1, (3, self.heads, -1)).unbind(2)
        return self.proj(attention(self.q_norm(q), self.k_norm(k), v))


class JointAttention(nn.Module):
    """The encoder's attention: image queries attend to [image tokens, text tokens].

    ``qkv_x`` (H → 3H) gives q, kₓ, vₓ from the image tokens, ``kv_y`` (H → 2H) gives k_y, v_y from the refined text
    (neither normalised nor modulated here); ``q_norm`` on q, the same ``k_norm`` on kₓ and k_y; the rotary table on q
    and kₓ only; ``proj`` (H → H)."""

    def __init__(self, dim: int, heads: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.heads = heads
        self.qkv_x = nn.Linear(dim, 3 * dim, bias=False, dtype=dtype)
        self.kv_y = nn.Linear(dim, 2 * dim, bias=False, dtype=dtype)
        self.q_norm = RMSNorm(dim // heads, dtype)
        self.k_norm = RMSNorm(dim // heads, dtype)
        self.proj = nn.Linear(dim, dim, dtype=dtype)

    def forward(self, s: torch.Tensor, y: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        q, k_x, v_x = self.qkv_x(s).unflatten(-1, (3, self.heads, -1)).unbind(2)
        k_y, v_y = self.kv_y(y).unflatten(-1, (2, self.heads, -1)).unbind(2)
        q = apply_rope(self.q_norm(q), rope)
        k = torch.cat([apply_rope(self.k_norm(k_x), rope), self.k_norm(k_y)], dim=1)
        return self.proj(attention(q, k, torch.cat([v_x, v_y], dim=1)))


class AdaLNBlock(nn.Module):
    """One transformer block modulated by the condition c (B, 1, H):
    [shift₁, scale₁, gate₁, shift₂, scale₂, gate₂] = ``adaLN_modulation``(c);
    x ← x + gate₁ ⊙ attn(modulate(norm1(x), shift₁, scale₁), *context);
    x ← x + gate₂ ⊙ SwiGLU(modulate(norm2(x), shift₂, scale₂))."""

    def __init__(self, attn: nn.Module, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.norm1 = RMSNorm(dim, dtype)
        self.attn = attn
        self.norm2 = RMSNorm(dim, dtype)
        self.mlp = SwiGLU(dim, dtype)
        self.adaLN_modulation = nn.Sequential(nn.Linear(dim, 6 * dim, dtype=dtype))

    def forward(self, x: torch.Tensor, c: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), *context)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class NeuralFieldBlock(nn.Module):
    """One layer of the per-patch neural field: θ = W_g·s (``param_generator1``, H → 4·Dd²); its first half, row-major,
    is A (Dd × 2Dd) with columns scaled to unit L2 norm, its second half Bm (2Dd × Dd); then, for a patch's pixel rows
    x (p², Dd), x ← x + silu(RMSNorm(x)·A)·Bm."""

    def __init__(self, dim: int, field_dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.param_generator1 = nn.Sequential(nn.Linear(dim, 4 * field_dim * field_dim, dtype=dtype))
        self.norm = RMSNorm(field_dim, dtype)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        a, bm = self.param_generator1(s).chunk(2, dim=-1)
        a = F.normalize(a.view(-1, d, 2 * d), dim=-2)
        return x + torch.bmm(F.silu(torch.bmm(self.norm(x), a)), bm.view(-1, 2 * d, d))


class TimestepEmbedder(nn.Module):
    """τ = W₂·silu(W₁·[cos(t·φ), sin(t·φ)]), φ_k = exp(−ln(10)·k/128), k = 0 … 127; t (B,) → (B, 1, H)."""

    def __init__(self, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * TIME_FREQUENCIES, dim, dtype=dtype), nn.SiLU(),
                                 nn.Linear(dim, dim, dtype=dtype))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        k = torch.arange(TIME_FREQUENCIES, dtype=torch.float32, device=t.device)
        phases = t.float()[:, None] * torch.exp(-math.log(TIME_MAX_PERIOD) * k / TIME_FREQUENCIES)
        e = torch.cat([torch.cos(phases), torch.sin(phases)], dim=-1)
        return self.mlp(e.to(self.mlp[0].weight.dtype)).unsqueeze(1)


class TextEmbedder(nn.Module):
    """RMSNorm(W_y·y) (``proj`` Dy → H, ``norm``); the learned positions are added by the caller."""

    def __init__(self, text_dim: int, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.proj = nn.Linear(text_dim, dim, dtype=dtype)
        self.norm = RMSNorm(dim, dtype)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(y))


class PixNerdTransformer(nn.Module):
    """The denoiser: ``forward(x, t, y)`` → the velocity dx/dt (see the module docstring for the equations).

    Inputs are expected on the weights' device and in their dtype; the image sides must be multiples of the patch size
    and y must have exactly ``txt_max_length`` tokens (a shorter prompt is padded by its encoder).
    """

    def __init__(self, config: PixNerdConfig, dtype: torch.dtype | None = None):
        super().__init__()
        self.config = cfg = config
        hidden, field = cfg.hidden_size, cfg.decoder_hidden_size
        self.y_pos_embedding = nn.Parameter(torch.zeros(1, cfg.txt_max_length, hidden, dtype=dtype))
        self.s_embedder = nn.ModuleDict(
            {"proj": nn.Linear(cfg.in_channels * cfg.patch_size**2, hidden, dtype=dtype)})
        self.x_embedder = nn.ModuleDict(
            {"embedder": nn.Sequential(nn.Linear(cfg.in_channels + PIXEL_CODE_DIM // 2, field, dtype=dtype))})
        self.t_embedder = TimestepEmbedder(hidden, dtype)
        self.y_embedder = TextEmbedder(cfg.txt_embed_dim, hidden, dtype)
        self.final_layer = nn.ModuleDict({"linear": nn.Linear(field, cfg.in_channels, dtype=dtype)})
        self.blocks = nn.ModuleList(
            [AdaLNBlock(JointAttention(hidden, cfg.num_groups, dtype), hidden, dtype)
             for _ in range(cfg.num_encoder_blocks)]
            + [NeuralFieldBlock(hidden, field, dtype) for _ in range(cfg.num_decoder_blocks)])
        self.text_refine_blocks = nn.ModuleList(
            [AdaLNBlock(SelfAttention(hidden, cfg.num_groups, dtype), hidden, dtype)
             for _ in range(cfg.num_text_blocks)])

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, Hh, Ww) at time t (B,) ∈ [0, 1] (0 = noise), y (B, L, Dy) text embeddings → dx/dt (B, C, Hh, Ww)."""
        cfg = self.config
        b, channels, height, width = x.shape
        p = cfg.patch_size
        patches = F.unfold(x, p, stride=p).transpose(1, 2)  # (B, N, C·p²)
        n = patches.shape[1]

        tau = self.t_embedder(t)  # (B, 1, H)
        c = F.silu(tau)
        y = self.y_embedder(y) + self.y_pos_embedding
        for block in self.text_refine_blocks:
            y = block(y, c)

        s = self.s_embedder.proj(patches)
        rope = rope_table(cfg.head_dim, height // p, width // p, device=x.device)
        for block in self.blocks[: cfg.num_encoder_blocks]:
            s = block(s, c, y, rope)
        s = F.silu(tau + s).flatten(0, 1)  # (B·N, H): one condition per patch

        pixels = patches.reshape(b * n, channels, p * p).transpose(1, 2)  # (B·N, p², C), pixels row-major
        code = rope_table(PIXEL_CODE_DIM, p, p, device=x.device).real.to(x.dtype)  # (p², 64) cosines
        field = self.x_embedder.embedder(torch.cat([pixels, code.expand(b * n, -1, -1)], dim=-1))
        for block in self.blocks[cfg.num_encoder_blocks:]:
            field = block(field, s)

        out = self.final_layer.linear(field)  # (B·N, p², C)
        out = out.transpose(1, 2).reshape(b, n, channels * p * p).transpose(1, 2)
        return F.fold(out, (height, width), p, stride=p)


def build_pixnerd(config: PixNerdConfig, *, device: torch.device | str, dtype: torch.dtype = torch.float32
                  ) -> PixNerdTransformer:
    """The denoiser for ``config``, created directly on ``device`` in ``dtype``, in eval mode: on ``meta`` it costs no
    memory (to count parameters, or to be materialised from a checkpoint); elsewhere it has PyTorch's default random
    initialisation (benchmarks: speed does not depend on the weights' values)."""
    with torch.device(device):
        return PixNerdTransformer(config, dtype).eval()

"""The part-B UNets of both editions, exactly as the specs draw them (BN = BatchNorm2d, act = GELU).

    x [1×28×28] ─ ConvBlock(1→D) ──────────────────────────────────────────── skip1 [D×28×28]
      └ DownBlock(D→D) ─────────────────────────────────────────────────────── skip2 [D×14×14]
        └ DownBlock(D→2D) ──────────────────────────────────────────────────── skip3 [2D×7×7]
          └ Flatten (7×7 avg-pool, GELU) → Unflatten (7×7 transposed conv, BN, GELU)  [2D×7×7]
            ⊕ skip3 → UpBlock(4D→D) [D×14×14] ⊕ skip2 → UpBlock(2D→D) [D×28×28]
              ⊕ skip1 → ConvBlock(2D→D) → 3×3 conv (D→1)

Conditioning modulates two places: the unflattened features and the first UpBlock's output.
  DDPM, time only:        unflatten += FC₁(t/T),                up1 += FC₂(t/T)
  DDPM, time and class:   unflatten = FC₃(c) · unflatten + FC₁(t/T),   up1 = FC₄(c) · up1 + FC₂(t/T)
  flow, time only:        unflatten = unflatten · FC₁(t),        up1 = up1 · FC₂(t)      (flow edition §3 2.1)
  flow, time and class:   the DDPM's class form with the raw t ∈ [0, 1] for t/T  (flow edition §3 2.4: the same
                          ``ClassConditionalUNet``)
with FC = FCBlock (Linear, GELU, Linear) of width 2D for the first place and D for the second, F_in = 1 for t and 10
for the one-hot c. Every conditioned UNet computes unflatten ← a₁ · unflatten + b₁ and up1 ← a₂ · up1 + b₂; the
classes differ only in which of a, b the time and class embeddings fill (``_modulation``).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def _conv_bn_gelu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.GELU())


def conv(cin: int, cout: int) -> nn.Sequential:
    """3×3 conv, stride 1, pad 1: changes channels, keeps size."""
    return _conv_bn_gelu(nn.Conv2d(cin, cout, 3, 1, 1), cout)


def down_conv(cin: int, cout: int) -> nn.Sequential:
    """3×3 conv, stride 2, pad 1: halves the size."""
    return _conv_bn_gelu(nn.Conv2d(cin, cout, 3, 2, 1), cout)


def up_conv(cin: int, cout: int) -> nn.Sequential:
    """4×4 transposed conv, stride 2, pad 1: doubles the size."""
    return _conv_bn_gelu(nn.ConvTranspose2d(cin, cout, 4, 2, 1), cout)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout), conv(cout, cout))


def down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(down_conv(cin, cout), conv_block(cout, cout))


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(up_conv(cin, cout), conv_block(cout, cout))


def fc_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.GELU(), nn.Linear(cout, cout))


class UNet(nn.Module):
    """The unconditional UNet of part B1 (the single-step denoiser D(z) ≈ x)."""

    def __init__(self, hidden: int = 128, in_channels: int = 1):
        super().__init__()
        d = hidden
        self.hidden = hidden
        self.enc1 = conv_block(in_channels, d)
        self.enc2 = down_block(d, d)
        self.enc3 = down_block(d, 2 * d)
        self.flatten = nn.Sequential(nn.AvgPool2d(7), nn.GELU())
        self.unflatten = _conv_bn_gelu(nn.ConvTranspose2d(2 * d, 2 * d, 7, 7), 2 * d)
        self.up1 = up_block(4 * d, d)
        self.up2 = up_block(2 * d, d)
        self.dec = conv_block(2 * d, d)
        self.out = nn.Conv2d(d, in_channels, 3, 1, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s1 = self.enc1(x)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        return s1, s2, s3, self.unflatten(self.flatten(s3))

    def decode(self, s1, s2, s3, bottom, modulate_up1=None) -> torch.Tensor:
        u1 = self.up1(torch.cat([bottom, s3], dim=1))
        if modulate_up1 is not None:
            u1 = modulate_up1(u1)
        u2 = self.up2(torch.cat([u1, s2], dim=1))
        return self.out(self.dec(torch.cat([u2, s1], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))


def _per_channel(embedding: torch.Tensor) -> torch.Tensor:
    """(B, C) → (B, C, 1, 1), to scale or shift a (B, C, H, W) feature map channel by channel."""
    return embedding[:, :, None, None]


def fourier_features(t: torch.Tensor, count: int) -> torch.Tensor:
    """(B, 1) times in [0, 1] → (B, 2·count): [sin(ω_k t), cos(ω_k t)] at ``count`` angular frequencies ω_k spaced
    geometrically from 1 to 1,000 — the sinusoidal embedding of DDPM's own UNet, for t normalised to [0, 1]. The
    spec feeds the FCBlocks the bare number t, whose one input must encode every noise level by itself; beside it, high
    frequencies tell close times apart. ``count`` = 0 is the spec's bare t."""
    if count == 0:
        return t
    omega = torch.logspace(0, 3, count, device=t.device, dtype=t.dtype)
    angles = t * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeConditionalUNet(UNet):
    """Part B2's ε_θ(x_t, t); ``t`` is the normalised timestep t/T, shape (B,) or (B, 1). With ``time_features`` > 0
    (beyond the spec) the FCBlocks see t's ``fourier_features`` instead of t."""

    def __init__(self, hidden: int = 64, in_channels: int = 1, time_features: int = 0):
        super().__init__(hidden, in_channels)
        self.time_features = time_features
        self.t_embed1 = fc_block(2 * time_features or 1, 2 * hidden)
        self.t_embed2 = fc_block(2 * time_features or 1, hidden)

    def _scales(self, batch: int, c: torch.Tensor | None):
        return 1.0, 1.0

    def _modulation(self, t: torch.Tensor, c: torch.Tensor | None):
        """(a₁, b₁, a₂, b₂) of unflatten ← a₁ · unflatten + b₁, up1 ← a₂ · up1 + b₂: the time embeddings shift."""
        scale1, scale2 = self._scales(t.shape[0], c)
        return scale1, _per_channel(self.t_embed1(t)), scale2, _per_channel(self.t_embed2(t))

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        t = fourier_features(t.reshape(-1, 1).to(x.dtype), self.time_features)
        scale1, shift1, scale2, shift2 = self._modulation(t, c)
        s1, s2, s3, bottom = self.encode(x)
        return self.decode(s1, s2, s3, scale1 * bottom + shift1, modulate_up1=lambda u: scale2 * u + shift2)


class FlowTimeConditionalUNet(TimeConditionalUNet):
    """The flow edition's time-conditioned u_θ(x_t, t) (§3 2.1), with t ∈ [0, 1] as is (0 = noise, 1 = image),
    shape (B,) or (B, 1). The time signal is multiplicative: unflatten ← unflatten · FC₁(t), up1 ← up1 · FC₂(t)
    (the same layers and parameters as the DDPM's ``TimeConditionalUNet``, which adds them)."""

    def _modulation(self, t: torch.Tensor, c: torch.Tensor | None):
        return _per_channel(self.t_embed1(t)), 0.0, _per_channel(self.t_embed2(t)), 0.0


class ClassConditionalUNet(TimeConditionalUNet):
    """Part B2's class-conditioned ε_θ(x_t, t, c), and the flow edition's u_θ(x_t, t, c) with the raw t ∈ [0, 1];
    ``c`` is a one-hot (B, 10) vector, all zeros for "no class" (the notebook's ``forward(x, c, t, mask)`` with the mask
    already applied to c)."""

    def __init__(self, hidden: int = 64, in_channels: int = 1, num_classes: int = 10, time_features: int = 0):
        super().__init__(hidden, in_channels, time_features)
        self.num_classes = num_classes
        self.c_embed1 = fc_block(num_classes, 2 * hidden)
        self.c_embed2 = fc_block(num_classes, hidden)

    def _scales(self, batch: int, c: torch.Tensor | None):
        if c is None:
            raise ValueError("the class-conditioned UNet needs a one-hot class vector c (zeros for unconditional)")
        c = c.to(self.c_embed1[0].weight.dtype)
        return _per_channel(self.c_embed1(c)), _per_channel(self.c_embed2(c))


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm in 8 groups, or as many as divide ``channels`` (a tiny test UNet's D = 4)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class FilmResBlock(nn.Module):
    """Beyond the spec: two 3×3 convs (GroupNorm, GELU) with a residual path, told the time between them —
    h ← h · (1 + γ(e)) + β(e), (γ, β) a linear map of the time embedding e — so every block, not only the spec's two
    places, knows how noisy its input is (the DDPM's own UNet, Ho et al. 2020, conditions every residual block)."""

    def __init__(self, cin: int, cout: int, embedding: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), group_norm(cout), nn.GELU())
        self.film = nn.Linear(embedding, 2 * cout)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1), group_norm(cout), nn.GELU())
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = _per_channel(self.film(e)).chunk(2, dim=1)
        return self.skip(x) + self.conv2(self.conv1(x) * (1 + scale) + shift)


class SelfAttention(nn.Module):
    """Beyond the spec: multi-head self-attention over the H·W positions of a feature map, pre-normed, residual. At
    the 7×7 level each of the 49 positions sees all the others, which is where a time-only model decides which digit
    it draws (bench/time_only_limits.py: the same UNet told the digit draws 91 % confident ones, not 76 %).

    On a CPU the attention is computed by PyTorch's plain math kernel, not its flash kernel: at 49 tokens the flash
    kernel's backward alone took 11 % of the better UNet's training step here, and the math kernel trains it 10–13 %
    faster (bench/RESULTS.md). The same formula either way; CUDA keeps PyTorch's choice."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = group_norm(channels)
        self.attention = nn.MultiheadAttention(channels, math.gcd(heads, channels), batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H·W, C)
        with sdpa_kernel(SDPBackend.MATH) if x.device.type == "cpu" else contextlib.nullcontext():
            attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + attended.transpose(1, 2).reshape(b, c, h, w)


class AttentionTimeUNet(nn.Module):
    """"A better time-conditioned UNet" (beyond the spec, both objectives): the spec's three levels (D at 28×28, D at
    14×14, 2D at 7×7) and its global bottleneck (7×7 average pool → 7×7 transposed conv), with every conv block a
    ``FilmResBlock`` told t, and self-attention at 7×7 around the bottleneck:

        e = FCBlock(fourier_features(t))                                       (width 4D)
        s1 = Res(x) [D×28²],  s2 = Res(down(s1)) [D×14²],  s3 = Attn(Res(down(s2))) [2D×7²]
        m = Attn(Res(s3 + unflatten(flatten(s3))))                              [2D×7²]
        u1 = Res(up(m ⊕ s3)) [D×14²],  u2 = Res(up(u1 ⊕ s2)) [D×28²],  out = conv(Res(u2 ⊕ s1))

    ``t`` is what the objective's spec UNet is given: t/T for the DDPM, t ∈ [0, 1] for the flow; shape (B,) or (B, 1).
    """

    def __init__(self, hidden: int = 64, in_channels: int = 1, time_features: int = 32):
        super().__init__()
        d, e = hidden, 4 * hidden
        self.hidden = hidden
        self.time_features = time_features
        self.t_embed = fc_block(2 * time_features or 1, e)
        self.enc1 = FilmResBlock(in_channels, d, e)
        self.down1, self.enc2 = down_conv(d, d), FilmResBlock(d, d, e)
        self.down2, self.enc3, self.attn3 = down_conv(d, 2 * d), FilmResBlock(2 * d, 2 * d, e), SelfAttention(2 * d)
        self.flatten = nn.Sequential(nn.AvgPool2d(7), nn.GELU())
        self.unflatten = _conv_bn_gelu(nn.ConvTranspose2d(2 * d, 2 * d, 7, 7), 2 * d)
        self.mid, self.attn_mid = FilmResBlock(2 * d, 2 * d, e), SelfAttention(2 * d)
        self.up1, self.dec1 = up_conv(4 * d, d), FilmResBlock(d, d, e)
        self.up2, self.dec2 = up_conv(2 * d, d), FilmResBlock(d, d, e)
        self.dec3 = FilmResBlock(2 * d, d, e)
        self.out = nn.Conv2d(d, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        e = self.t_embed(fourier_features(t.reshape(-1, 1).to(x.dtype), self.time_features))
        s1 = self.enc1(x, e)
        s2 = self.enc2(self.down1(s1), e)
        s3 = self.attn3(self.enc3(self.down2(s2), e))
        m = self.attn_mid(self.mid(s3 + self.unflatten(self.flatten(s3)), e))
        u1 = self.dec1(self.up1(torch.cat([m, s3], dim=1)), e)
        u2 = self.dec2(self.up2(torch.cat([u1, s2], dim=1)), e)
        return self.out(self.dec3(torch.cat([u2, s1], dim=1), e))


# The flow edition (§3): B 1.2.3's pure-noise denoiser is B1's UNet; its class-conditioned flow model is B3's UNet fed
# the raw t ∈ [0, 1] (§3 2.4 states the DDPM's form, unflatten = c₁ · unflatten + t₁, up1 = c₂ · up1 + t₂).
MODEL_CLASSES = {"denoiser": UNet, "time": TimeConditionalUNet, "class": ClassConditionalUNet,
                 "pure_noise": UNet, "flow_time": FlowTimeConditionalUNet, "flow_class": ClassConditionalUNet}


# UNet architectures: the spec's (per model kind, ``MODEL_CLASSES``) and, beyond the spec, for the time-only models
ARCHITECTURES = ("spec", "attention")
ATTENTION_KINDS = ("time", "flow_time")


def check_architecture(kind: str, architecture: str) -> None:
    """ValueError unless ``architecture`` is one of ``ARCHITECTURES`` that model ``kind`` can have."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    if architecture != "spec" and kind not in ATTENTION_KINDS:
        raise ValueError(f"the {architecture} UNet is for the time-only models {ATTENTION_KINDS}, not {kind!r}")


def build_model(kind: str, hidden: int, time_features: int = 0, architecture: str = "spec") -> nn.Module:
    """A fresh UNet of ``kind`` (a key of ``MODEL_CLASSES``) with ``hidden`` = D channels (and, for a time-conditioned
    one, ``time_features`` Fourier features of t; 0 is the spec's bare t); ``architecture`` "attention" is the
    ``AttentionTimeUNet`` of a time-only kind."""
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_CLASSES)}")
    check_architecture(kind, architecture)
    if architecture == "attention":
        return AttentionTimeUNet(hidden, time_features=time_features)
    if time_features:
        return MODEL_CLASSES[kind](hidden, time_features=time_features)
    return MODEL_CLASSES[kind](hidden)

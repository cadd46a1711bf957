"""Building blocks of the ADM/CM-style UNet g (docs/method.md section 2.1)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def norm_groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """The largest group count <= max_groups that divides `channels` with >= min_group_size channels a group.

    GN(32) at the paper's widths (128-512 channels); narrow tutorial widths keep groups of several
    channels instead of degenerating into instance norm.
    """
    for g in range(min(max_groups, max(channels // min_group_size, 1)), 0, -1):
        if channels % g == 0:
            return g
    return 1


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters and state_dict) that keeps a bf16/fp16 activation in its dtype under autocast.

    Autocast runs group_norm in float32, so every norm would write a float32 copy that the next conv
    casts back. The CUDA kernel already accumulates the statistics of a bf16 input in float32, so we
    call it on the input's dtype: the same statistics, half the memory traffic. Without autocast
    (CPU, float32) this is exactly nn.GroupNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                w = None if self.weight is None else self.weight.to(x.dtype)
                b = None if self.bias is None else self.bias.to(x.dtype)
                return F.group_norm(x, self.num_groups, w, b, self.eps)
        return super().forward(x)


def group_norm(channels: int, max_groups: int = 32) -> GroupNorm:
    return GroupNorm(norm_groups(channels, max_groups), channels)


def zero_(module: nn.Module) -> nn.Module:
    """Zero every parameter of a module (ADM/CM zero-init of the last conv of a block)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(c_noise: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of the scalar time input, laid out [cos, sin] (ADM), computed in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=c_noise.device) / half)
    args = c_noise.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ResBlock(nn.Module):
    """GN, SiLU, conv3x3; FiLM GN(h)(1+s)+b from the embedding; SiLU, dropout, conv3x3; 1x1 skip if needed."""

    def __init__(self, ch: int, out_ch: int, emb_dim: int, dropout: float, zero_init: bool, max_groups: int):
        super().__init__()
        self.in_norm = group_norm(ch, max_groups)
        self.in_conv = nn.Conv2d(ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.out_norm = group_norm(out_ch, max_groups)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if zero_init:
            zero_(self.out_conv)
        self.skip = nn.Identity() if ch == out_ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_conv(F.silu(self.in_norm(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = torch.addcmul(shift, self.out_norm(h), 1 + scale)   # FiLM: GN(h)(1 + s) + b, one pass
        h = self.out_conv(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions (ADM AttentionBlock), with a residual."""

    def __init__(self, ch: int, num_heads: int, zero_init: bool, max_groups: int):
        super().__init__()
        if ch % num_heads:
            raise ValueError(f"attention width {ch} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(ch, max_groups)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj = nn.Conv1d(ch, ch, 1)
        if zero_init:
            zero_(self.proj)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        q, k, v = qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, d)
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class Downsample(nn.Module):
    """3x3 stride-2 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 upsample followed by a 3x3 conv."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, emb=None):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))

"""The time-conditioned UNet g (ADM/CM style, docs/method.md section 2.1) with decoder hooks for the signals."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DenoiserConfig
from .layers import Downsample, ResBlock, SelfAttention, Upsample, group_norm, timestep_embedding, zero_

# inject(site, h) -> h: site "stem" after the stem conv, or the scale s of a decoder level (resolution H/2^s)
Injector = Callable[[object, torch.Tensor], torch.Tensor]


class _Block(nn.Module):
    """A ResBlock, optionally followed by attention and/or a resampler."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x, emb):
        for layer in self.layers:
            x = layer(x, emb)
        return x


class DenoiserUNet(nn.Module):
    """F_theta(cat(c_in x, x^d), c_noise): input 1+C_img channels, output 1 channel.

    With cfg.downscale = 2^k > 1 the UNet works at image_size / 2^k: its input is average-pooled by 2^k,
    and its last decoder features are upsampled (nearest) back to image_size one factor 2 at a time, with an
    injection site at each of the scales k-1, ..., 0, so that h's signals down to the full-resolution e_0
    carry the detail before the output convolution. Injection sites are always named by their scale relative
    to the image (resolution image_size / 2^s).
    """

    def __init__(self, in_channels: int, image_size: int, cfg: DenoiserConfig, out_channels: int = 1):
        super().__init__()
        self.cfg = cfg
        base, L = cfg.base, len(cfg.mult)
        if cfg.downscale < 1 or cfg.downscale & (cfg.downscale - 1) or image_size % cfg.downscale:
            raise ValueError(f"denoiser downscale must be a power of 2 dividing the image size {image_size}, "
                             f"got {cfg.downscale}")
        self.offset = cfg.downscale.bit_length() - 1   # k: g's level l is the image's scale l + k
        image_size //= cfg.downscale
        emb_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        res_block = lambda cin, cout: ResBlock(cin, cout, emb_dim, cfg.dropout, cfg.zero_init, cfg.max_groups)  # noqa: E731
        attn = lambda ch: SelfAttention(ch, cfg.num_heads, cfg.zero_init, cfg.max_groups)  # noqa: E731

        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chans, ch, res = [base], base, image_size
        for level, m in enumerate(cfg.mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res_block(ch, base * m)]
                ch = base * m
                if res in cfg.attn_resolutions:
                    layers.append(attn(ch))
                self.down.append(_Block(*layers))
                skip_chans.append(ch)
            if level < L - 1:
                self.down.append(_Block(Downsample(ch)))
                skip_chans.append(ch)
                res //= 2
        self.middle = _Block(res_block(ch, ch), attn(ch), res_block(ch, ch))

        self.up = nn.ModuleList()
        self.up_scale: list[int | None] = []   # the scale s to inject after this block (first block of a level)
        self.level_channels: dict[int, int] = {}
        for level in reversed(range(L)):
            m = cfg.mult[level]
            for i in range(cfg.num_res_blocks + 1):
                layers = [res_block(ch + skip_chans.pop(), base * m)]
                ch = base * m
                if res in cfg.attn_resolutions:
                    layers.append(attn(ch))
                if level > 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.up.append(_Block(*layers))
                self.up_scale.append(level + self.offset if i == 0 else None)
            self.level_channels[level + self.offset] = ch
            res *= 2
        for s in range(self.offset):        # the upsampled output path, scales k-1 ... 0
            self.level_channels[s] = ch
        self.out_norm = group_norm(ch, cfg.max_groups)
        self.out_conv = nn.Conv2d(ch, out_channels, 3, padding=1)
        if cfg.zero_init:
            zero_(self.out_conv)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, inject: Injector | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(c_noise, self.cfg.base).to(self.stem.weight.dtype))
        if self.offset:
            x = F.avg_pool2d(x, self.cfg.downscale)
        h = self.stem(x)
        if inject is not None:
            h = inject("stem", h)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for block, scale in zip(self.up, self.up_scale):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if inject is not None and scale is not None:
                h = inject(scale, h)
        for s in reversed(range(self.offset)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            if inject is not None:
                h = inject(s, h)
        return self.out_conv(F.silu(self.out_norm(h)))

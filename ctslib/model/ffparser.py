"""FF-Parser (FFTP): a learnable filter in the 2-D Fourier domain (docs/method.md section 2.4, MedSegDiff)."""
from __future__ import annotations

import torch
from torch import nn


class FFParser(nn.Module):
    """e <- irfft2(rfft2(e) * W), W in C^(E x h x (w//2+1)), norm="ortho", computed in float32.

    init="identity" sets W = 1+0i so the block starts as the identity; init="msd" draws the real
    and imaginary parts from N(0, 0.02^2) as MedSegDiff does (damps the signal ~50x at start).
    Non-square inputs are allowed.
    """

    def __init__(self, channels: int, height: int, width: int, init: str = "identity"):
        super().__init__()
        weight = torch.zeros(channels, height, width // 2 + 1, 2)
        if init == "identity":
            weight[..., 0] = 1.0
        elif init == "msd":
            nn.init.normal_(weight, std=0.02)
        else:
            raise ValueError(f"unknown FF-Parser init {init!r}; use 'identity' or 'msd'")
        self.weight = nn.Parameter(weight)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        h, w = e.shape[-2:]
        if (h, w // 2 + 1) != tuple(self.weight.shape[1:3]):
            raise ValueError(f"FF-Parser built for {tuple(self.weight.shape[1:3])} frequencies, got input {h}x{w}")
        with torch.autocast(device_type=e.device.type, enabled=False):
            spec = torch.fft.rfft2(e.float(), dim=(-2, -1), norm="ortho")
            spec = spec * torch.view_as_complex(self.weight.float().contiguous())
            out = torch.fft.irfft2(spec, s=(h, w), dim=(-2, -1), norm="ortho")
        return out.to(e.dtype)

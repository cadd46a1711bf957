"""Seeded synthetic phantoms: the embedded default dataset that needs no download.

Two kinds, both with an exact binary ground truth:
- ``mri``: C channels of a brain-like ellipse with a tumour ellipse whose contrast differs per
  channel (bright in some, dark in others, like FLAIR vs T1), plus Gaussian noise.
- ``us``: one ultrasound-like channel with multiplicative speckle and a hypoechoic nodule.
Item ``i`` of split ``s`` is a pure function of (seed, split, i), so runs are reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}
# Per-channel tumour contrast for the MRI phantom, in the BraTS order [t1, t1ce, t2, flair].
_MRI_CONTRAST = (-0.35, 0.55, 0.45, 0.7)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float, angle: float) -> torch.Tensor:
    """Boolean (h, w) mask of a rotated ellipse with centre/radii in pixels."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


@dataclass(frozen=True)
class PhantomConfig:
    kind: str = "mri"          # "mri" or "us"
    size: int = 64
    channels: int = 4          # MRI only; ultrasound is always 1 channel
    noise: float = 0.15
    empty_fraction: float = 0.1  # share of slices with no tumour (as in real slice stacks)


def make_phantom(index: int, cfg: PhantomConfig, seed: int = 0, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (image (C,H,W) float32, mask (1,H,W) float32 in {0,1}) for one phantom."""
    if cfg.kind not in ("mri", "us"):
        raise ValueError(f"unknown phantom kind {cfg.kind!r}; use 'mri' or 'us'")
    g = torch.Generator().manual_seed(seed * 7_919 + _SPLIT_OFFSET.get(split, 3_000_017) + index)
    r = lambda lo, hi: lo + (hi - lo) * torch.rand((), generator=g).item()  # noqa: E731
    n = cfg.size
    empty = torch.rand((), generator=g).item() < cfg.empty_fraction
    lesion = torch.zeros(n, n, dtype=torch.bool)
    if not empty:
        lesion = _ellipse(n, n, r(0.3, 0.7) * n, r(0.3, 0.7) * n, r(0.08, 0.2) * n, r(0.08, 0.2) * n, r(0, math.pi))
    if cfg.kind == "mri":
        organ = _ellipse(n, n, n / 2 + r(-2, 2), n / 2 + r(-2, 2), r(0.38, 0.46) * n, r(0.32, 0.42) * n, r(-0.3, 0.3))
        lesion &= organ
        chans = []
        for c in range(cfg.channels):
            base = 0.4 + 0.1 * c / max(cfg.channels - 1, 1)
            img = organ.float() * base + lesion.float() * _MRI_CONTRAST[c % len(_MRI_CONTRAST)] * r(0.8, 1.2)
            img = img + cfg.noise * torch.randn(n, n, generator=g) * organ.float()
            chans.append(img)
        image = torch.stack(chans)
    else:
        tissue = 0.6 - 0.35 * lesion.float()
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        rayleigh = torch.sqrt(a * a + b * b) / math.sqrt(2.0)
        image = (tissue * (1 + (rayleigh - 1) * cfg.noise * 4)).clamp(0, 1)[None]
    return image.float(), lesion.float()[None]

"""Training-only augmentation: random flips and small rotations of image and mask together.

The mask is rotated with nearest-neighbour sampling, so it stays exactly {0,1}. Randomness comes
from torch's global generator, which DataLoader seeds per worker (reproducible with
``torch.manual_seed``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import SegDataset
from .preprocess import single_thread


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5          # probability of a left-right flip
    vflip: float = 0.0          # probability of an up-down flip
    rotate_p: float = 0.5       # probability of a rotation
    max_degrees: float = 10.0   # rotation angle ~ U(-max, max)


def rotate_pair(image: torch.Tensor, mask: torch.Tensor, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate (C,H,W) image (bilinear, border padding) and (1,H,W) mask (nearest, zero padding)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, *image.shape[-2:]], align_corners=False)
    img = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    msk = F.grid_sample(mask[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    return img, (msk > 0.5).float()


def augment_pair(image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig = AugmentConfig()):
    """One random draw of flips and rotation applied identically to image and mask."""
    if torch.rand(()) < cfg.hflip:
        image, mask = image.flip(-1), mask.flip(-1)
    if torch.rand(()) < cfg.vflip:
        image, mask = image.flip(-2), mask.flip(-2)
    if cfg.max_degrees > 0 and torch.rand(()) < cfg.rotate_p:
        deg = float((torch.rand(()) * 2 - 1) * cfg.max_degrees)
        image, mask = rotate_pair(image, mask, deg)
    return image.contiguous(), mask.contiguous()


class Augmented(SegDataset):
    """Wrap a dataset so every item is randomly flipped/rotated (use for the train split only)."""

    def __init__(self, base: SegDataset, cfg: AugmentConfig = AugmentConfig()):
        self.base, self.cfg = base, cfg
        self.in_channels = base.in_channels
        self.image_size = getattr(base, "image_size", None)
        self.labelled = getattr(base, "labelled", True)

    def __len__(self) -> int:
        return len(self.base)

    def meta(self, i: int) -> dict:
        return self.base.meta(i)

    def load(self, i: int):
        image, mask = self.base.load(i)
        with single_thread():
            return augment_pair(image, mask, self.cfg)

    def __getattr__(self, name):  # forward dataset-specific helpers (native_shape, records, ...)
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

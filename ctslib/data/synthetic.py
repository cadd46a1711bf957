"""Seeded phantoms (phantoms.py) passed through the same preprocessing as real data.

MRI-like phantom: per-image version of the section 8 step 2 volume normalisation (brain = any
channel non-zero, percentile clip, z-score over the brain, background 0). Ultrasound-like
phantom: [0,1] intensities z-scored per image, like DDTI. Optional diffusion as for real data.
"""
from __future__ import annotations

import torch

from .base import SegDataset
from .phantoms import PhantomConfig, make_phantom
from .preprocess import DiffusionConfig, anisotropic_diffusion, single_thread, zscore_image, zscore_volume

DEFAULT_COUNTS = {"train": 512, "val": 64, "test": 64}


class PhantomSlices(SegDataset):
    """``phantom`` (4 channels) / ``phantom-us`` (1 channel) items; item i is a pure function of
    (seed, split, i)."""

    def __init__(self, kind: str = "mri", split: str = "train", image_size: int = 64, count: int | None = None,
                 diffusion: DiffusionConfig | None = None, seed: int = 0, channels: int = 4):
        self.cfg = PhantomConfig(kind=kind, size=int(image_size), channels=channels)
        self.n = int(count or DEFAULT_COUNTS.get(split, 64))
        self.split, self.seed, self.diffusion = split, seed, diffusion
        self.image_size = int(image_size)
        self.in_channels = channels if kind == "mri" else 1
        self._memo: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # items are pure functions of i: keep them


    def __len__(self) -> int:
        return self.n

    def meta(self, i: int) -> dict:
        return {"case": f"phantom-{self.cfg.kind}-{self.split}-{i // 8:04d}", "slice": i % 8, "path": f"phantom:{self.cfg.kind}"}

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i not in self._memo:
            with single_thread():
                self._memo[i] = self._load(i)
        image, mask = self._memo[i]
        return image.clone(), mask.clone()

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = make_phantom(i, self.cfg, self.seed, self.split)
        if self.cfg.kind == "mri":
            arr = image.numpy()
            norm = zscore_volume(arr, (arr != 0).any(axis=0), diffusion=self.diffusion, device="cpu")
            return torch.from_numpy(norm), mask
        if self.diffusion is not None:
            d = self.diffusion
            image = anisotropic_diffusion(image[None], d.kappa, d.gamma, d.iterations, d.option)[0]
        return zscore_image(image), mask

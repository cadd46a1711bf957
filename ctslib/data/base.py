"""What every ctslib dataset provides (docs/method.md section 8).

Items are ``(image (C,H,W) float32, mask (1,H,W) float32 in {0,1}, meta)`` with meta keys
exactly ``case`` (str), ``slice`` (int) and ``path`` (str), so torch's default collate works.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def image_and_mask(item: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a preprocessed (C+1, S, S) item, mask last, into (image (C,S,S), mask (1,S,S))."""
    t = torch.from_numpy(item)
    return t[:-1], t[-1:]


class SegDataset(Dataset):
    """Base class: subclasses set ``in_channels``, ``image_size``, ``labelled`` and implement
    ``__len__``, ``meta(i)`` (cheap, no decoding) and ``load(i) -> (image, mask)``.

    Datasets read from files set ``has_native_grid`` and implement ``native_mask(i)``: the expert
    mask on the file's own grid, which ``fit`` (``resize`` or ``pad``, see ``preprocess.fit_to_size``)
    maps to the model's ``image_size``; evaluation maps predictions back with
    ``preprocess.to_native`` (docs/evaluation.md section 5).
    """

    in_channels: int = 1
    image_size: int = 64
    labelled: bool = True
    fit: str = "resize"
    has_native_grid: bool = False

    def meta(self, i: int) -> dict:
        raise NotImplementedError

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def native_mask(self, i: int) -> np.ndarray | None:
        """(H, W) bool expert mask on the native grid, or None where the model grid is the native one."""
        return None

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for dataset of {n} items")
        return i % n

    def __getitem__(self, i: int):
        i = self._check_index(int(i))
        image, mask = self.load(i)
        return image, mask, self.meta(i)

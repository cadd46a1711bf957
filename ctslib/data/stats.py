"""Simple dataset statistics for the data notebook."""
from __future__ import annotations

import numpy as np

from .splits import split_cases


def describe(dataset) -> dict:
    """Items, cases, channels, share of items with tumour and mean tumour area fraction
    (over the items that have tumour), plus the image mean/std over all pixels."""
    n = len(dataset)
    areas = np.zeros(n)
    sums = sq = count = 0.0
    for i in range(n):
        image, mask, _ = dataset[i]
        areas[i] = float(mask.mean())
        sums += float(image.sum())
        sq += float((image.double() ** 2).sum())
        count += image.numel()
    positive = areas > 0
    mean = sums / max(count, 1)
    return {
        "n_items": n,
        "n_cases": len(split_cases(dataset)),
        "in_channels": int(dataset.in_channels),
        "frac_with_tumour": float(positive.mean()) if n else 0.0,
        "mean_tumour_area": float(areas[positive].mean()) if positive.any() else 0.0,
        "image_mean": mean,
        "image_std": float(np.sqrt(max(sq / max(count, 1) - mean**2, 0.0))),
    }

"""Lesion-wise scores (docs/evaluation.md section 12): connected components, matched as in BraTS 2023.

A per-case Dice hides small lesions: one large lesion found and three small ones missed can still score
0.9. The BraTS 2023 lesion-wise protocol (Saluja et al., "BraTS 2023 lesion-wise performance metrics",
github.com/rachitsaluja/BraTS-2023-Metrics) scores each lesion instead:

1. Lesions of the expert mask G: its connected components (full connectivity: 8 in 2-D, 26 in 3-D),
   where components that lie within ``dilation`` steps of each other count as one lesion (G is dilated
   ``dilation`` times with the ``generate_binary_structure(ndim, 2)`` element, the components of the
   dilated mask group G's voxels; G itself is not changed).
2. Components of the prediction P, with the same connectivity.
3. A lesion is **detected** when some component of P meets the lesion dilated ``dilation`` times; its
   Dice is that of the lesion against the union of those components. Otherwise it is **missed** (Dice 0).
4. A component of P that meets no dilated lesion is a **false positive**.
5. Lesions of ``min_size`` voxels or fewer are left out of the counts and of the score (BraTS-GLI: 50).
6. Lesion-wise Dice = sum of the lesions' Dice / (lesions + false positives); 1 when both are zero.

Components come from ``skimage.measure.label``. This module imports nothing else from ctslib.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import label

__all__ = ["LesionScores", "lesion_scores"]


@dataclass(frozen=True)
class LesionScores:
    """One case's lesion-wise counts and score (module docstring, steps 1-6)."""
    lesions: int            # expert lesions larger than min_size
    detected: int           # of those, met by the prediction
    missed: int             # lesions - detected
    false_positives: int    # predicted components that meet no (dilated) expert lesion
    dice: float             # lesion-wise Dice
    small_lesions: int      # expert lesions of min_size voxels or fewer, left out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    if steps <= 0:
        return mask
    return ndimage.binary_dilation(mask, ndimage.generate_binary_structure(mask.ndim, 2), iterations=steps)


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``pad`` voxels (clipped): a dilation by ``pad`` steps stays inside it."""
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - pad, 0), int(i.max()) + pad + 1) for i in idx)


def _expert_lesions(gt: np.ndarray, dilation: int) -> tuple[np.ndarray, int]:
    """(label image of G whose labels merge components closer than ``dilation`` steps, number of lesions)."""
    grouped, n = label(_dilate(gt, dilation), connectivity=gt.ndim, return_num=True)
    return np.where(gt, grouped, 0), n


def lesion_scores(pred: Any, gt: Any, dilation: int = 3, min_size: int = 50) -> LesionScores:
    """Lesion-wise counts and Dice of one case (2-D image or 3-D volume), BraTS 2023 protocol (module docstring).

    ``pred`` and ``gt`` are boolean masks of the same shape; sizes are in voxels (pixels in 2-D).
    """
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} != gt shape {g.shape}")
    lesions, n = _expert_lesions(g, dilation)
    components = label(p, connectivity=p.ndim)
    matched: set[int] = set()
    dices, detected, small = [], 0, 0
    for k in range(1, n + 1):
        lesion = lesions == k
        box = _box(lesion, dilation)
        hits = np.unique(components[box][_dilate(lesion[box], dilation)])
        hits = hits[hits > 0]
        matched.update(int(h) for h in hits)
        size = int(np.count_nonzero(lesion))
        if size <= min_size:
            small += 1
            continue
        detected += bool(hits.size)     # met within the dilation: detected even where Dice is 0
        found = np.isin(components, hits) if hits.size else np.zeros_like(p)
        dices.append(2.0 * np.count_nonzero(found & lesion) / (np.count_nonzero(found) + size))
    false_positives = int(components.max()) - len(matched)
    denominator = len(dices) + false_positives
    score = float(sum(dices) / denominator) if denominator else 1.0
    return LesionScores(lesions=len(dices), detected=detected, missed=len(dices) - detected,
                        false_positives=false_positives, dice=score, small_lesions=small)

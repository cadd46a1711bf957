"""Soft, batch-pooled Dice and IoU of the authors' released code: parity checks only (docs/evaluation.md section 10).

They sum soft probabilities over the WHOLE batch (all slices pooled), so large-tumour slices dominate
and empty slices vanish: NOT comparable to the per-slice or per-volume Dice of `ctslib.metrics`, and
never part of `evaluate`'s output.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import _to_numpy

__all__ = ["legacy_soft_dice", "legacy_soft_iou"]


def _legacy_sums(prob: Any, target: Any) -> tuple[float, float, float]:
    p = _to_numpy(prob).astype(np.float64)
    g = _to_numpy(target).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prob shape {p.shape} != target shape {g.shape}")
    return float((p * g).sum()), float(p.sum()), float(g.sum())


def legacy_soft_dice(prob: Any, target: Any, eps: float = 1e-6) -> float:
    """LEGACY soft batch-pooled Dice ``(2*sum(p*g) + eps) / (sum(p) + sum(g) + eps)`` (parity only)."""
    inter, sp, sg = _legacy_sums(prob, target)
    return (2.0 * inter + eps) / (sp + sg + eps)


def legacy_soft_iou(prob: Any, target: Any, eps: float = 1e-6) -> float:
    """LEGACY soft batch-pooled IoU ``(sum(p*g) + eps) / (sum(p) + sum(g) - sum(p*g) + eps)`` (parity only)."""
    inter, sp, sg = _legacy_sums(prob, target)
    return (inter + eps) / (sp + sg - inter + eps)

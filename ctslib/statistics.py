"""Statistics over cases (docs/evaluation.md sections 4 and 7): mean ± std and a seeded bootstrap CI.

NaN and inf are left out (an undefined HD95 is counted elsewhere, not averaged).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import stats

__all__ = ["bootstrap_ci", "finite", "mean_std"]


def finite(values: Iterable[float]) -> np.ndarray:
    """The finite values as a float64 array (NaN and inf dropped)."""
    v = np.asarray(list(values), dtype=np.float64)
    return v[np.isfinite(v)]


def mean_std(values: Iterable[float]) -> dict[str, float | None]:
    """{"mean", "std"} over finite values (population std, ddof=0); None if none."""
    v = finite(values)
    if v.size == 0:
        return {"mean": None, "std": None}
    return {"mean": float(v.mean()), "std": float(v.std())}


def bootstrap_ci(
    values: Iterable[float],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """Seeded percentile-bootstrap CI of the mean (docs/evaluation.md section 7).

    ``scipy.stats.bootstrap(method="percentile")`` over the finite values, ``n_resamples``
    resamples drawn with ``np.random.default_rng(seed)``; returns [lo, hi], or None if
    there are no values or ``n_resamples <= 0`` (bootstrap switched off, e.g. for quick
    validation). One value gives [value, value] (every resample is that value).
    """
    v = finite(values)
    if v.size == 0 or n_resamples <= 0:
        return None
    if v.size == 1:
        return [float(v[0])] * 2
    ci = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return [float(ci.low), float(ci.high)]

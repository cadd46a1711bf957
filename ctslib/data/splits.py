"""Patient-level splits and item limits (docs/method.md section 8 step 6).

Splits are always by case (patient / volume / frame), never by slice, so no patient is seen in
two splits. When a source has no split of its own, cases are shuffled with a seeded generator
and cut 70/10/20 (train/val/test), or read from a ``splits.csv`` (columns case, split).
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import data_error

DEFAULT_FRACTIONS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
ALL = "all"


def seeded_case_split(cases: Sequence[str], seed: int = 0, fractions=DEFAULT_FRACTIONS) -> dict[str, str]:
    """Map each distinct case to a split name: sorted, shuffled with ``seed``, cut by fractions."""
    unique = sorted(set(cases))
    order = np.random.default_rng(seed).permutation(len(unique))
    out: dict[str, str] = {}
    start = 0
    for k, (name, frac) in enumerate(fractions):
        stop = len(unique) if k == len(fractions) - 1 else start + int(round(frac * len(unique)))
        for i in order[start:stop]:
            out[unique[i]] = name
        start = stop
    return out


def read_split_file(path: str | Path) -> dict[str, str]:
    """Read a committed ``case,split`` CSV."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise data_error(path, f"cannot read split file ({exc})") from None
    if not rows or not {"case", "split"} <= set(rows[0]):
        raise data_error(path, "split file needs the columns case,split and at least one row")
    return {r["case"]: r["split"] for r in rows}


def limit_by_cases(cases: Sequence[str], slices: Sequence[int], limit: int | None) -> list[int]:
    """Indices of at most ``limit`` items, taking whole cases first (in the given order).

    When the next case does not fit whole, a contiguous block centred on its middle slice fills
    the remainder, so the result has exactly ``min(limit, n)`` items and at most one partial case.
    """
    n = len(cases)
    if limit is None or limit >= n:
        return list(range(n))
    groups: "OrderedDict[str, list[int]]" = OrderedDict()
    for i, c in enumerate(cases):
        groups.setdefault(c, []).append(i)
    chosen: list[int] = []
    for idx in groups.values():
        room = limit - len(chosen)
        if room <= 0:
            break
        if len(idx) <= room:
            chosen.extend(idx)
        else:
            idx = sorted(idx, key=lambda i: slices[i])
            start = max(0, (len(idx) - room) // 2)
            chosen.extend(idx[start:start + room])
            break
    return sorted(chosen)


def split_cases(dataset) -> dict[str, list[int]]:
    """Group a dataset's item indices by case (in item order), for per-volume metrics."""
    out: dict[str, list[int]] = {}
    for i in range(len(dataset)):
        meta = dataset.meta(i) if hasattr(dataset, "meta") else dataset[i][2]
        out.setdefault(meta["case"], []).append(i)
    return out

"""Training logs: one JSON record per line in OUT/log.jsonl, written by `train.fit` and read back here.

Records: ``{"event": "start", ...configs}``, training records ``{"step", "loss", ...}`` (no event),
``{"event": "val", "step", "val_dice_consistency", "val_dice_aux"}`` and ``{"event": "end", ...summary}``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record as a line of JSON."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict]:
    """Records of a training log.jsonl (empty list if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def log_series(records: list[dict], key: str, event: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over records with the given event (None = training records)."""
    rows = [r for r in records if r.get("event") == event and r.get(key) is not None]
    return np.array([r["step"] for r in rows]), np.array([float(r[key]) for r in rows])

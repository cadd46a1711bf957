"""Result records of the tutorial notebooks: OUT/results/<notebook>.json, and the Markdown tables they show.

`record` writes a notebook's headline numbers (JSON-safe: numpy/torch scalars converted, NaN -> null);
`reproduce.write_summary` gathers them into OUT/summary.json and summary.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io_utils import write_json_atomic


def jsonable(obj):
    """Numbers, strings, lists and dicts only (numpy/torch scalars converted, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if torch.is_tensor(obj) or isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def record(out: str | Path, notebook: str, results: dict, **meta) -> Path:
    """Write OUT/results/<notebook>.json (the runner gathers these into summary.json / .md)."""
    path = Path(out) / "results" / f"{notebook}.json"
    write_json_atomic(path, jsonable({"notebook": notebook, **meta, **results}))
    return path


def load_record(out: str | Path, notebook: str) -> dict | None:
    """A notebook's recorded results, or None."""
    path = Path(out) / "results" / f"{notebook}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of dict rows (floats with 4 significant digits)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def score_rows(results: dict, model: str) -> list[dict]:
    """Table-2-style rows (per-slice Dice and IoU, mean and std) of one model's evaluation."""
    rows = []
    for output, r in results.items():
        d, i = r["per_slice"]["dice"], r["per_slice"]["iou"]
        rows.append({"model": model, "output": output, "dice": d["mean"], "dice_std": d["std"],
                     "iou": i["mean"], "iou_std": i["std"], "n": r["per_slice"]["n"]})
    return rows


OUTPUT_NAMES = {"one_step": "consistency sample (1 step)", "multistep": "consistency sample (multistep)",
                "ensemble": "consistency ensemble", "aux_head": "auxiliary head alone"}


def pm_table(rows: Sequence[dict]) -> str:
    """Table-2-style Markdown: model, output, Dice and IoU as mean ± std, number of test slices."""
    cell = lambda m, s: "n/a" if m is None else f"{100 * m:.1f} ± {100 * (s or 0):.1f}"  # noqa: E731
    return markdown_table([{"model": r["model"], "output": OUTPUT_NAMES.get(r["output"], r["output"]),
                            "Dice (%)": cell(r["dice"], r["dice_std"]), "IoU (%)": cell(r["iou"], r["iou_std"]),
                            "test slices": r["n"]} for r in rows])

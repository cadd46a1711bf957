"""The cost/Dice table of quality.py runs with `--equal-seconds`: what a CTS-M step costs against the supervised
U-Net's, and its one-step Dice against the supervised U-Net at equal steps and at equal seconds.

    python benchmarks/cost_table.py benchmarks/results/cost_sweep/*_val_*.json

One Markdown table per data set, split, image size and steps, one line per file (its CTS-M row, the `supervised` row at the same
steps and the `supervised_same_seconds` row), sorted by the CTS step's CPU cost. Dice are the across-seed
mean ± std in points (per patient for LGG, per image for DDTI); "vs equal s" is the one-step Dice minus the
supervised U-Net's at equal seconds. The g column is the file's preset with its `--model-set` options.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.config import train_config_from_dict  # noqa: E402
from ctslib.paper import run_model_config  # noqa: E402

EQUAL_ROW = "supervised_same_seconds"


def _dice(row: dict, output: str) -> tuple[float, float | None]:
    a = row["across_seeds"][output]
    return 100 * a["dice_mean"], None if a["dice_std"] is None else 100 * a["dice_std"]


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def g_setting(result: dict) -> str:
    """The consistency head g of a run: 'base 16, mult 1, at 1/8 resolution' (its preset with --model-set applied)."""
    g = run_model_config(result).denoiser
    where = "full resolution" if g.downscale == 1 else f"1/{g.downscale} resolution"
    shared = train_config_from_dict(result["train_config"]).teacher_takes_online_signals
    return f"base {g.base}, mult {','.join(map(str, g.mult))}, {where}" + (", teacher on the online h" if shared else "")


def table_line(result: dict) -> dict:
    """The numbers of one file: its CTS row, the supervised rows at equal steps and equal seconds."""
    rows = {r["row"]: r for r in result["rows"]}
    cts = next(r for r in result["rows"] if r["row"].startswith("cts"))
    sup, same = rows["supervised"], rows[EQUAL_ROW]
    one, aux = _dice(cts, "one_step"), _dice(cts, "aux_head")
    equal_steps = [e["train"]["steps"] for e in same["per_seed"] if "train" in e]
    return {"g": g_setting(result), "params": cts["cost"]["params"],
            "gflop": cts["cost"]["gflop_per_step"]["total"], "sup_gflop": sup["cost"]["gflop_per_step"]["total"],
            "cpu_ms": 1e3 * cts["cost"]["cpu_seconds_per_step"],
            "ratio": cts["cost"]["cpu_seconds_per_step"] / sup["cost"]["cpu_seconds_per_step"],
            "steps": result["steps"], "one_step": one, "aux": aux, "sup": _dice(sup, "unet"),
            "same": _dice(same, "unet"), "same_steps": equal_steps, "gap": one[0] - _dice(same, "unet")[0],
            "threads": result.get("threads"), "seeds": cts["seeds"]}


def markdown(results: list[dict]) -> str:
    """One table per data set, split, image size and number of steps."""
    groups: dict[tuple, list] = {}
    for r in results:
        key = (r["data_kind"], r["split"], r["level_label"], r["image_size"], r["steps"])
        groups.setdefault(key, []).append(table_line(r))
    out = []
    for (kind, split, level, size, _), lines in sorted(groups.items(), key=lambda kv: (kv[0][3], kv[0][4], kv[0][0])):
        lines.sort(key=lambda x: x["cpu_ms"])
        first = lines[0]
        out.append(f"**{kind} {split}, {size} px** ({level}, {first['steps']} steps, seeds {first['seeds']}, "
                   f"{first['threads']} thread(s); supervised step {first['sup_gflop']:.2f} GFLOP)\n")
        out.append("| g | params | GFLOP/step | CPU ms/step | x supervised | one-step Dice | aux head | "
                   "supervised, equal steps | supervised, equal s (steps) | vs equal s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for x in lines:
            steps = "/".join(map(str, x["same_steps"]))
            out.append(f"| {x['g']} | {x['params'] / 1e3:.0f}k | {x['gflop']:.2f} | {x['cpu_ms']:.0f} | "
                       f"{x['ratio']:.1f} | {_pm(*x['one_step'])} | {_pm(*x['aux'])} | {_pm(*x['sup'])} | "
                       f"{_pm(*x['same'])} ({steps}) | {x['gap']:+.1f} |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="quality.py JSON files written with --equal-seconds")
    args = p.parse_args(argv)
    results = []
    for path in args.files:
        r = json.loads(Path(path).read_text())
        if not any(row["row"] == EQUAL_ROW for row in r.get("rows", [])):
            print(f"{path}: no {EQUAL_ROW} row (run quality.py with --equal-seconds); left out", file=sys.stderr)
            continue
        results.append(r)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

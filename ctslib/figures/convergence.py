"""Notebooks 04-05: how runs converge (Fig-3 and Fig-4 style) and where the consistency chain holds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import precond
from ..logs import log_series, read_log
from .base import VARIANT_COLOURS, finish, plt, recipe_colour, smooth


def plot_snapshot_scores(steps, scores, log_path: str | Path, save=None):
    """Fig-3 style: training loss (from the log) and test Dice/IoU of the EMA snapshots saved over time."""
    fig, axes = plt().subplots(1, 2, figsize=(11, 3.4))
    step, loss = log_series(read_log(log_path), "loss")
    axes[0].plot(step, smooth(loss), color="k")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"total loss $\mathcal{L}_{CTS}$ (moving average)")
    axes[0].set_title("training loss", fontsize=9)
    for output, ls, colour in (("one_step", "-", "tab:blue"), ("aux_head", "--", "tab:green")):
        for key, marker in (("dice", "o"), ("iou", "s")):
            ys = [s[output][key] for s in scores if s.get(output) is not None]
            if ys:
                axes[1].plot(steps[: len(ys)], ys, ls, marker=marker, ms=3, color=colour, alpha=1 if key == "dice" else 0.6,
                             label=f"{output.replace('_', ' ')} {'IoU' if key == 'iou' else 'Dice'}")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("test score")
    axes[1].set_title("test Dice / IoU of the saved EMA snapshots", fontsize=9)
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    return finish(fig, save)


def plot_variant_convergence(logs: dict[str, str | Path], save=None, window: int = 9):
    """Fig-4 style: consistency loss L_CT and validation Dice of the one-step sample, one colour per run,
    the last value in the legend; the Dice axis is zoomed to the data (the axis label says so)."""
    fig, axes = plt().subplots(1, 2, figsize=(12, 3.6))
    finals = []
    for i, (label, path) in enumerate(logs.items()):
        colour = VARIANT_COLOURS.get(label) or recipe_colour(label) or f"C{i + 3}"
        style = "--" if "paper" in label.lower() else "-"
        records = read_log(path)
        step, loss = log_series(records, "loss_ct")
        axes[0].plot(step, smooth(loss, window), style, color=colour, label=label)
        vs, vd = log_series(records, "val_dice_consistency", "val")
        axes[1].plot(vs, vd, style, marker="o", ms=3, color=colour, label=f"{label} (last {vd[-1]:.3f})" if len(vd) else label)
        finals.extend(vd)
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"$\mathcal{L}_{CT}$ (moving average of %d logs)" % window)
    axes[0].set_title(r"consistency loss $\mathcal{L}_{CT}$", fontsize=9)
    if finals:
        lo, hi = min(finals), max(finals)
        pad = max(0.02, 0.15 * (hi - lo))
        axes[1].set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
    axes[1].set_ylabel("validation Dice (axis zoomed)")
    axes[1].set_title("validation Dice of the one-step sample (EMA weights)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, save)


def plot_noise_level_dice(curves: dict[str, dict], title: str = "", save=None):
    """Dice of f(x^m + sigma z, sigma) > 0 against sigma, one line per run (evaluate.dice_by_noise_level).

    A curve entry is {"sigma": [...], "dice": [...]} or, for several seeds, {"sigma": [...], "dice": [[...], ...]}
    (drawn as the mean with a min-max band). Runs named after a recipe keep one colour in every figure
    (paper: orange, anchored: blue). The right end, sigma_max, is what one-step sampling uses.
    """
    fig, ax = plt().subplots(figsize=(6.5, 3.4))
    for i, (label, c) in enumerate(curves.items()):
        colour = recipe_colour(label, f"C{i + 2}")
        sig, d = np.asarray(c["sigma"], dtype=float), np.asarray(c["dice"], dtype=float)
        if d.ndim == 2:
            ax.fill_between(sig, d.min(0), d.max(0), alpha=0.2, color=colour)
            d = d.mean(0)
        ax.plot(sig, d, "-o", ms=3, label=label, color=colour)
    ax.axvline(precond.SIGMA_MAX, color="grey", ls=":", lw=1)
    ax.text(precond.SIGMA_MAX, 0.02, "one step ", ha="right", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(r"noise level $\sigma$ of the noised expert mask")
    ax.set_ylabel(r"Dice of $f_\theta(x_\sigma, \sigma) > 0$")
    ax.set_title(title or "where the consistency chain holds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return finish(fig, save)


def noise_level_curves(quality_json: str | Path) -> dict[str, dict]:
    """{row label: {"sigma", "dice" (one list per seed)}} from a benchmarks/quality.py JSON with noise levels,
    the paper's recipe first (the order the notebook's own curves use)."""
    data = json.loads(Path(quality_json).read_text())
    curves = {}
    for r in sorted(data.get("rows", []), key=lambda r: "paper" not in r["label"].lower()):
        if "noise_levels" not in r:
            continue
        per_seed = [e["noise_levels_dice"] for e in r.get("per_seed", []) if "noise_levels_dice" in e]
        curves[r["label"]] = {"sigma": r["noise_levels"]["sigma"], "dice": per_seed or [r["noise_levels"]["dice"]]}
    return curves

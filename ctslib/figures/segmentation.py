"""Predicted masks against the expert's (notebooks 00 and 03): outlines, error fills, Dice, uncertainty maps.

Every segmentation panel is `base.seg_panel`: expert (cyan) and predicted (yellow, dashed) outlines
on the image, false positives magenta, false negatives blue, the Dice in the title. Maps that are
compared across panels share one colour scale and one colour bar.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import STD_CMAP, finish, grid, interactive, plane, plt, seg_legend, seg_panel, wrap_label

STD_LABEL = "ensemble std (0: members agree, 1: split ±1)"


def _map_panel(ax, values, title: str, cmap: str, vmax: float):
    shown = ax.imshow(plane(values), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _case_row(axes, image, expert, pred, std, title: str, std_max: float):
    seg_panel(axes[0], image, expert, pred, wrap_label(title))
    return _map_panel(axes[1], std, "ensemble std", STD_CMAP, std_max)


def cases_widget(images, masks, one_step, ensemble, names: Sequence[str], std_max: float = 1.0):
    """Slider over cases: the one-step mask against the expert's (Dice in the title), and the ensemble's std."""
    import ipywidgets as w

    def show(case):
        fig, axes = grid(1, 2, 3.0, layout="constrained")
        shown = _case_row(axes[0], images[case], masks[case], one_step.mask[case], ensemble.std[case], names[case], std_max)
        fig.colorbar(shown, ax=axes[0, 1], fraction=0.046, label="std")
        seg_legend(fig, y=-0.12)
        plt().show()

    return interactive(show, case=w.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="case",
                                                continuous_update=False))


def plot_cases(images, masks, one_step, ensemble, names: Sequence[str], save=None, max_cases: int = 4,
               std_max: float = 1.0):
    """The first cases side by side: top row the one-step mask against the expert's, bottom row the
    ensemble's std on one fixed scale [0, ``std_max``]."""
    n = min(max_cases, images.shape[0])
    fig, axes = grid(2, n, 2.4, layout="constrained")
    shown = None
    for c in range(n):
        shown = _case_row(axes[:, c], images[c], masks[c], one_step.mask[c], ensemble.std[c], names[c], std_max)
    axes[0, 0].set_ylabel("one-step mask", fontsize=8)
    fig.colorbar(shown, ax=list(axes[1]), fraction=0.03, label=STD_LABEL)
    seg_legend(fig, y=-0.06)
    return finish(fig, save)


def plot_predictions(images, masks, seg, save=None, max_items: int = 4):
    """Columns = test items; rows = the one-step consistency sample and the auxiliary head, each
    against the expert mask (outlines, error fills, Dice)."""
    n = min(max_items, images.shape[0])
    outputs = [("one-step sample", seg.mask)] + ([("aux head $\\hat y$", seg.aux_mask)] if seg.aux_mask is not None else [])
    fig, axes = grid(len(outputs), n, 2.4)
    for r, (name, masks_out) in enumerate(outputs):
        for c in range(n):
            seg_panel(axes[r, c], images[c], masks[c], masks_out[c], f"item {c}" if r == 0 else "")
        axes[r, 0].set_ylabel(name, fontsize=9)
    seg_legend(fig, y=-0.04)
    return finish(fig, save)


def _uncertainty_row(axes, image, expert, seg, i: int, std_max: float):
    seg_panel(axes[0], image, expert, seg.mask[i], f"ensemble mask (E={seg.members})")
    maps = ((seg.prob[i], "p = (ybar+1)/2", "viridis", 1.0), (seg.std[i], "std over members", STD_CMAP, std_max),
            (seg.vote_variance[i], "vote variance q(1-q)", STD_CMAP, 0.25))
    return [_map_panel(ax, m, title, cmap, vmax) for ax, (m, title, cmap, vmax) in zip(axes[1:], maps)]


def uncertainty_widget(images, masks, seg, std_max: float = 1.0):
    """Slider over the ensemble's items: mask, probability, std and vote-variance maps (fixed scales)."""
    import ipywidgets as w

    def show(item):
        fig, axes = grid(1, 4, 2.6, layout="constrained")
        shown = _uncertainty_row(axes[0], images[item], masks[item], seg, item, std_max)
        for ax, im in zip(axes[0, 1:], shown):
            fig.colorbar(im, ax=ax, fraction=0.046, location="bottom")
        plt().show()

    return interactive(show, item=w.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="item",
                                                continuous_update=False))


def plot_uncertainty(images, masks, seg, save=None, max_rows: int = 4, std_max: float = 1.0):
    """Uncertainty maps of the first items of an ensemble; every column on one colour scale
    (p in [0, 1], std in [0, ``std_max``], vote variance in [0, 1/4]) with one colour bar."""
    rows = min(max_rows, images.shape[0])
    fig, axes = grid(rows, 4, 2.4, layout="constrained")
    shown = []
    for r in range(rows):
        shown = _uncertainty_row(axes[r], images[r], masks[r], seg, r, std_max)
    for col, (im, label) in enumerate(zip(shown, ("foreground probability p", STD_LABEL, "vote variance q(1-q)")), start=1):
        bar = fig.colorbar(im, ax=list(axes[:, col]), location="bottom", fraction=0.04, pad=0.01)
        bar.set_label(label, fontsize=7)
    seg_legend(fig, y=-0.03)
    return finish(fig, save)


def uncertainty_summary(masks, seg, ring: int = 1) -> dict[str, float]:
    """Where the ensemble's std sits: its maximum, and its mean on the expert boundary (pixels within
    ``ring`` px of it), inside and outside the expert mask."""
    from scipy.ndimage import binary_dilation, binary_erosion
    std = np.stack([plane(s) for s in seg.std])
    expert = np.stack([plane(m) > 0.5 for m in masks])
    boundary = np.stack([binary_dilation(e, iterations=ring) & ~binary_erosion(e, iterations=ring) for e in expert])
    inside, outside = expert & ~boundary, ~expert & ~boundary
    mean = lambda where: float(std[where].mean()) if where.any() else 0.0  # noqa: E731
    return {"max": float(std.max()), "boundary": mean(boundary), "inside": mean(inside), "outside": mean(outside)}

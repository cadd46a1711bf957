"""Notebook 02's figures: intensity histograms, anisotropic diffusion, the slice viewer, items, resolution ceilings."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch

from .base import finish, grid, interactive, overlay, plt, wrap_label


def plot_histograms(before: np.ndarray, normed: np.ndarray, brain: np.ndarray, names: Sequence[str],
                    before_label: str = "as stored", save=None):
    """Brain-voxel intensity histograms per modality: as read from the file (``before_label`` says what
    that is) and after ctslib's clip + z-score."""
    fig, axes = grid(2, len(names), 2.9)
    for c, name in enumerate(names):
        axes[0, c].hist(before[c][brain].ravel(), bins=80, color="tab:blue")
        axes[0, c].set_title(f"{name}: {before_label}", fontsize=8)
        axes[0, c].set_xlabel("intensity in the file", fontsize=8)
        axes[1, c].hist(normed[c][brain].ravel(), bins=80, color="tab:green")
        axes[1, c].set_title(f"{name}: clipped + z-scored", fontsize=8)
        axes[1, c].set_xlabel("z-score (brain mean 0, std 1)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("brain voxels", fontsize=8)
    return finish(fig, save)


def _diffused(image: np.ndarray, kappa: float, iterations: int, gamma: float = 0.1, option: int = 1) -> np.ndarray:
    from ..data import anisotropic_diffusion
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return anisotropic_diffusion(x, kappa, gamma, iterations, option)[0, 0].numpy()


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def plot_diffusion_sweep(image: np.ndarray, kappas: Sequence[float] = (0.05, 0.2, 0.5),
                         iterations: Sequence[int] = (1, 5, 20), save=None):
    """Perona-Malik sweep on one [0,1] slice: rows = iterations, columns = before + kappas; one grey scale [0, 1]."""
    fig, axes = grid(len(iterations), len(kappas) + 1, 2.3, layout="constrained")
    shown = None
    for r, n in enumerate(iterations):
        shown = axes[r, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title("before", fontsize=8)
        axes[r, 0].set_ylabel(f"{n} iteration{'s' if n != 1 else ''}", fontsize=8)
        for c, kappa in enumerate(kappas, start=1):
            axes[r, c].imshow(_diffused(image, kappa, n), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"kappa={kappa:g}", fontsize=8)
    for ax in axes.ravel():
        _bare(ax)
    fig.colorbar(shown, ax=list(axes.ravel()), fraction=0.03, label="intensity (clip range mapped to [0, 1])")
    return finish(fig, save)


def diffusion_widget(image: np.ndarray):
    """Sliders for kappa, iterations, gamma and the conduction function on one [0,1] slice."""
    import ipywidgets as w

    def show(kappa, iterations, gamma, option):
        out = _diffused(image, kappa, iterations, gamma, option)
        fig, axes = grid(1, 3, 3.0)
        for ax, img, title, scale in ((axes[0, 0], image, "before", dict(cmap="gray", vmin=0, vmax=1)),
                                      (axes[0, 1], out, "after", dict(cmap="gray", vmin=0, vmax=1)),
                                      (axes[0, 2], out - image, "after - before", dict(cmap="coolwarm", vmin=-0.2, vmax=0.2))):
            ax.imshow(img, **scale)
            ax.set_title(title, fontsize=9)
            _bare(ax)
        plt().show()

    slider = dict(continuous_update=False)
    return interactive(show, kappa=w.FloatLogSlider(value=0.2, base=10, min=-2, max=0, step=0.1, **slider),
                         iterations=w.IntSlider(value=5, min=0, max=50, **slider),
                         gamma=w.FloatSlider(value=0.1, min=0.01, max=0.25, step=0.01, **slider),
                         option=w.Dropdown(options=[("exp (keeps edges)", 1), ("rational", 2)], value=1))


def best_slice(mask: np.ndarray) -> int:
    """Index of the axial slice (last axis) with the most foreground voxels."""
    return int(np.argmax(np.asarray(mask).reshape(-1, np.asarray(mask).shape[-1]).sum(0)))


def _slice_row(axes, volume, mask, z: int, names):
    """Axial slice z of every modality (RAS arrays, shown anterior up) with the mask overlaid."""
    for c, ax in enumerate(axes):
        overlay(ax, np.rot90(volume[c][..., z]), np.rot90(mask[..., z]), f"{names[c]}, slice {z}", channel=0)


def slice_viewer_widget(volume: np.ndarray, mask: np.ndarray, names: Sequence[str]):
    """IntSlider over axial slices (starting at the slice with the most mask), all modalities + overlay."""
    import ipywidgets as w

    def show(z):
        fig, axes = grid(1, len(names), 2.8)
        _slice_row(axes[0], volume, mask, z, names)
        plt().show()

    return interactive(show, z=w.IntSlider(value=best_slice(mask), min=0, max=volume.shape[-1] - 1,
                                             description="slice", continuous_update=False))


def plot_slice(volume: np.ndarray, mask: np.ndarray, names: Sequence[str], z: int | None = None, save=None):
    """Static figure of one axial slice (default: the one with the most mask), all modalities."""
    z = best_slice(mask) if z is None else z
    fig, axes = grid(1, len(names), 2.8)
    _slice_row(axes[0], volume, mask, z, names)
    return finish(fig, save)


def plot_items(dataset, indices: Iterable[int], title: str = "", save=None, cols: int = 6):
    """Grid of dataset items (image with its expert mask filled in colour)."""
    indices = list(indices)
    rows = max(1, math.ceil(len(indices) / cols))
    fig, axes = grid(rows, cols, 2.0)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, i in zip(axes.ravel(), indices):
        image, mask, meta = dataset[i]
        ax.set_axis_on()
        overlay(ax, image, mask, wrap_label(f"{meta['case']}:{meta['slice']}"))
    if title:
        fig.suptitle(title)
    return finish(fig, save)


def plot_resolution_ceilings(rows: Sequence[dict], native_sizes: dict[str, int] | None = None, save=None):
    """Dice of the resized-and-mapped-back expert masks against the working size, one line per dataset;
    ``native_sizes`` ({dataset: px}) marks the size the files are stored at (dotted; no resizing there: 100%)."""
    fig, ax = plt().subplots(figsize=(6, 3.4))
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        ax.plot([r["size"] for r in mine], [100 * r["dice_tumour"] for r in mine], "-o", label=name)
    stored: dict[int, list[str]] = {}
    for name, size in (native_sizes or {}).items():
        stored.setdefault(int(size), []).append(name.split(" ")[0])
    for size in stored:
        ax.axvline(size, color="grey", ls=":", lw=1)
    sizes = sorted({r["size"] for r in rows} | set(stored))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{s}\n({'/'.join(stored[s])} files)" if s in stored else str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("working size S (px)")
    ax.set_ylabel("Dice on the files' grid (%)")
    ax.set_title("resolution ceiling: expert masks resized to S and back\n(slices with tumour)", fontsize=9)
    if rows:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no file-backed dataset here", ha="center", va="center", transform=ax.transAxes)
    return finish(fig, save)

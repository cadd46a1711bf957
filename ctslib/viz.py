"""Plotting helpers for the tutorial notebooks (notebooks stay thin: one call per figure).

Conventions (STYLE.md): every ``*_widget`` returns an ipywidgets object whose sliders use
``continuous_update=False``; the notebook follows it with the matching static ``plot_*`` figure,
so an executed notebook (papermill, nbval, a PDF export) still shows the picture. Every
``plot_*`` takes ``save=PATH`` and writes a PNG there (the runner collects them in OUT/figures).
Matplotlib is imported lazily so that ``import ctslib.viz`` stays cheap.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from . import precond, schedules
from .logs import log_series, read_log

MASK_CMAP = "autumn"          # mask overlays: opaque red-yellow on a grey image
OVERLAY_ALPHA = 0.45


# ----------------------------------------------------------------------------------- basics

HEADLESS_ENV = "CTS_HEADLESS"   # set by `reproduce` and the test run: notebooks executed without a browser


def interactive(show, **controls):
    """``ipywidgets.interactive(show, **controls)``, except in headless runs ($CTS_HEADLESS=1).

    Executed headlessly (papermill, nbval) no one can move a slider, and nbclient can miss the
    kernel's idle message when a cell's first widget draw is captured into an Output widget
    (jupyter/nbclient#312): the run then hangs. There the callback draws once at the sliders'
    defaults as plain cell output (so it is still executed) and the sliders come back unwired.
    In JupyterLab the widget draws into itself and redraws on every change (tests/test_browser.py
    drives it in a real browser).
    """
    import ipywidgets as w
    if os.environ.get(HEADLESS_ENV, "").strip() not in ("", "0"):
        show(**{name: control.value for name, control in controls.items()})
        return w.VBox([*controls.values(), w.HTML("<i>headless run: the sliders move in JupyterLab</i>")])
    return w.interactive(show, **controls)

def _plt():
    import matplotlib.pyplot as plt
    return plt


def finish(fig, save: str | Path | None = None):
    """Tight layout, write a PNG to ``save`` (folders created), and return the figure."""
    fig.tight_layout()
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, dpi=110, bbox_inches="tight")
    return fig


def _np(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def display_channel(image, channel: int | None = None) -> np.ndarray:
    """(H,W) picture of a (C,H,W) image: ``channel``, else the FLAIR-like one
    (BraTS [t1,t1ce,t2,flair] -> 3, LGG [pre,FLAIR,post] -> 1, otherwise 0)."""
    a = _np(image)
    if a.ndim == 2:
        return a
    if channel is None:
        channel = {4: 3, 3: 1}.get(a.shape[0], 0)
    return a[channel]


def overlay(ax, image, mask=None, title: str | None = None, channel: int | None = None, alpha: float = OVERLAY_ALPHA,
            cmap: str = MASK_CMAP):
    """Grey image with the binary ``mask`` overlaid in colour (transparent where 0)."""
    ax.imshow(display_channel(image, channel), cmap="gray", interpolation="nearest")
    if mask is not None:
        m = _np(mask).reshape(_np(mask).shape[-2:]) > 0.5
        ax.imshow(np.ma.masked_where(~m, m.astype(float)), cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def wrap_label(text: str, width: int = 22, max_lines: int = 2) -> str:
    """A panel title that fits a small axis: wrapped at hyphens or spaces (long words split), never cut;
    beyond ``max_lines`` the middle is elided with '...' so that both ends (dataset, case number) stay."""
    import textwrap
    lines = textwrap.wrap(text, width, break_on_hyphens=True) or [text]
    if len(lines) <= max_lines:
        return "\n".join(lines)
    keep = width * max_lines - 3
    short = text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]
    return "\n".join(textwrap.wrap(short, width, break_on_hyphens=True))


def _grid(rows: int, cols: int, size: float = 2.2):
    fig, axes = _plt().subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    return fig, axes


# ------------------------------------------------------------------- 01: consistency maths
def sigma_axis(n: int = 400, sigma_min: float = precond.SIGMA_MIN, sigma_max: float = precond.SIGMA_MAX) -> torch.Tensor:
    """Log-spaced noise levels from sigma_min to sigma_max (float64)."""
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n, dtype=torch.float64)


def plot_karras_grids(ns: Sequence[int] = (2, 11, 201), save=None):
    """The ascending Karras grid t_1..t_N for a few N, on a log axis (docs/method.md section 1.1)."""
    fig, ax = _plt().subplots(figsize=(8, 2.2 + 0.3 * len(ns)))
    for row, n in enumerate(ns):
        g = precond.karras_grid(n).numpy()
        ax.scatter(g, np.full_like(g, row), s=12 if n < 50 else 4, label=f"N = {n}")
    ax.set_xscale("log")
    ax.set_yticks(range(len(ns)), [f"N = {n}" for n in ns])
    ax.set_xlabel(r"noise level $t_n$ (= $\sigma$)")
    ax.set_title(r"Karras grid $t_n = (\sigma_{min}^{1/\rho} + \frac{n-1}{N-1}(\sigma_{max}^{1/\rho}-\sigma_{min}^{1/\rho}))^\rho$, $\rho=7$")
    return finish(fig, save)


def _scalings_axes(ax, sigma_data: float, marker: float | None = None, styles=("-", "-", "-")):
    s = sigma_axis()
    skip, out, cin = precond.scalings(s, sigma_data)
    for y, name, st in ((skip, r"$c_{skip}$", styles[0]), (out, r"$c_{out}$", styles[1]), (cin, r"$c_{in}$", styles[2])):
        ax.plot(s.numpy(), y.numpy(), st, label=f"{name} (sd={sigma_data:g})")
    ax.axvline(precond.SIGMA_MIN, color="k", lw=0.8, ls=":")
    if marker is not None:
        ax.axvline(marker, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, max(2.05, float(cin.max()) * 1.05))
    ax.set_xlabel(r"$\sigma$")


def plot_scalings(sigma_data: float = precond.SIGMA_DATA, save=None):
    """c_skip, c_out, c_in over sigma with the boundary sigma_min marked (docs/method.md section 1.2)."""
    fig, ax = _plt().subplots(figsize=(7, 3.6))
    _scalings_axes(ax, sigma_data)
    ax.annotate(r"boundary $\sigma_{min}$: $c_{skip}=1,\ c_{out}=0$", (precond.SIGMA_MIN, 1.0), (0.01, 1.4),
                arrowprops=dict(arrowstyle="->"), fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Consistency-model preconditioning")
    return finish(fig, save)


def scalings_widget():
    """Sliders for sigma (log) and sigma_data; shows the curves and the three values at sigma."""
    import ipywidgets as w

    def show(sigma, sigma_data):
        fig, ax = _plt().subplots(figsize=(7, 3.4))
        _scalings_axes(ax, sigma_data, marker=sigma)
        skip, out, cin = (float(v) for v in precond.scalings(sigma, sigma_data))
        ax.set_title(f"sigma={sigma:.4g}: c_skip={skip:.4g}  c_out={out:.4g}  c_in={cin:.4g}", fontsize=9)
        ax.legend(fontsize=7)
        _plt().show()

    return interactive(
        show,
        sigma=w.FloatLogSlider(value=1.0, base=10, min=math.log10(precond.SIGMA_MIN), max=math.log10(precond.SIGMA_MAX),
                               step=0.05, description="sigma", continuous_update=False),
        sigma_data=w.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.05, description="sigma_data", continuous_update=False))


def plot_sigma_data_effect(values: Sequence[float] = (0.25, 0.5, 1.0), save=None):
    """How sigma_data moves the skip/output cross-over (c_skip = c_out near t = sigma_data)."""
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.4))
    s = sigma_axis()
    for sd in values:
        skip, out, cin = precond.scalings(s, sd)
        axes[0].plot(s, skip, label=f"c_skip, sd={sd:g}")
        axes[0].plot(s, out, "--", label=f"c_out, sd={sd:g}")
        axes[1].plot(s, (cin * torch.sqrt(s**2 + 1.0)).numpy(), label=f"sd={sd:g}")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(r"$\sigma$")
        ax.legend(fontsize=7)
    axes[0].set_title("skip vs network share of f")
    axes[1].set_title(r"std of $c_{in} x_t$ for a {-1,+1} mask (RMS 1)")
    axes[1].axhline(1.0, color="k", lw=0.6, ls=":")
    return finish(fig, save)


def _noised(mask_pm1: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    z = torch.randn(mask_pm1.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mask_pm1.double() + sigma * z


def _noising_row(axes, mask_pm1, sigma: float, sigma_data: float = precond.SIGMA_DATA):
    x = _noised(mask_pm1, sigma)
    skip, out, cin = (float(v) for v in precond.scalings(sigma, sigma_data))
    rms = float((cin * x).square().mean().sqrt())
    panels = ((x, f"x_t = x^m + {sigma:.3g} z"), (cin * x, f"c_in x_t (RMS {rms:.2f})"),
              (skip * x, f"c_skip x_t (c_skip={skip:.2g})"))
    for ax, (img, title) in zip(axes, panels):   # one fixed grey scale: [-2.5, 2.5]
        ax.imshow(_np(img).squeeze(), cmap="gray", vmin=-2.5, vmax=2.5, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()


def noising_widget(mask_pm1: torch.Tensor):
    """Slider over sigma: the noised mask x_t, the network input c_in x_t and the skip part c_skip x_t."""
    import ipywidgets as w

    def show(sigma):
        fig, axes = _grid(1, 3, 2.6)
        _noising_row(axes[0], mask_pm1, sigma)
        _plt().show()

    return interactive(show, sigma=w.FloatLogSlider(value=0.5, base=10, min=-2.7, max=1.9, step=0.1,
                                                      description="sigma", continuous_update=False))


def plot_noising(mask_pm1: torch.Tensor, sigmas: Sequence[float] = (0.002, 0.1, 0.5, 2.0, 80.0), save=None):
    """Rows of (x_t, c_in x_t, c_skip x_t) at a few noise levels."""
    fig, axes = _grid(len(sigmas), 3, 2.3)
    for row, s in zip(axes, sigmas):
        _noising_row(row, mask_pm1, s)
    return finish(fig, save)


def plot_ct_schedule(total_steps: int = 600_000, s0: int = 2, s1: int = 200, mu0: float = 0.95, save=None):
    """N(k) and mu(k) of CT over the training run (docs/method.md section 1.4)."""
    k = np.unique(np.concatenate([np.arange(0, min(1000, total_steps + 1)), np.linspace(0, total_steps, 600).astype(int)]))
    n = [schedules.ct_num_scales(int(i), total_steps, s0, s1) for i in k]
    mu = [schedules.ct_target_decay(int(i), total_steps, s0, s1, mu0) for i in k]
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    axes[0].plot(k, n)
    axes[0].set_title(f"N(k): grid points (s0={s0}, s1={s1}, K={total_steps:,})")
    axes[1].plot(k, mu)
    axes[1].set_title(r"$\mu(k) = \mu_0^{s_0/n(k)}$: target EMA rate")
    for ax in axes:
        ax.set_xlabel("iteration k")
        ax.set_xscale("symlog", linthresh=100)
    return finish(fig, save)


def schedule_widget(total_steps: int = 600_000):
    """Slider over k: the grid used at iteration k (N(k) points) and the target rate mu(k)."""
    import ipywidgets as w

    def show(k):
        n = schedules.ct_num_scales(k, total_steps)
        fig, ax = _plt().subplots(figsize=(8, 1.8))
        g = precond.karras_grid(n).numpy()
        ax.scatter(g, np.zeros_like(g), s=8)
        ax.set_xscale("log")
        ax.set_yticks([])
        ax.set_title(f"k={k:,}: N(k)={n}, mu(k)={schedules.ct_target_decay(k, total_steps):.5f}", fontsize=9)
        _plt().show()

    return interactive(show, k=w.IntSlider(value=1000, min=0, max=total_steps, step=1000, description="k",
                                             continuous_update=False))


def plot_curricula(total_steps: int = 400_000, save=None):
    """CT (sqrt, s1=200) vs iCT (doubling, s0=10, s1=1280) curricula, and iCT's lognormal p(i) at N=11."""
    k = np.linspace(0, total_steps, 800).astype(int)
    ct = [schedules.ct_num_scales(int(i), total_steps) for i in k]
    ict = [schedules.ict_num_scales(int(i), total_steps) for i in k]
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    axes[0].plot(k / 1000, ct, label="CT: N(k) = ceil(sqrt(...)) (s0=2, s1=200)")
    axes[0].step(k / 1000, ict, where="post", label="iCT: min(s0 2^floor(k/K'), s1)+1 (s0=10, s1=1280)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration k (thousands)")
    axes[0].set_title(f"number of grid points, K={total_steps:,}")
    axes[0].legend(fontsize=7)
    p = schedules.ict_index_probs(precond.karras_grid(11)).numpy()
    axes[1].bar(np.arange(1, 11), p)
    axes[1].set_xlabel("pair index i (sigma_i, sigma_{i+1}), N=11")
    axes[1].set_title("iCT lognormal index probabilities p(i)")
    return finish(fig, save)


# ------------------------------------------------------------------------- 02: data
def plot_histograms(raw: np.ndarray, normed: np.ndarray, brain: np.ndarray, names: Sequence[str], save=None):
    """Brain-voxel intensity histograms per modality, before and after normalisation."""
    fig, axes = _grid(2, len(names), 2.8)
    for c, name in enumerate(names):
        axes[0, c].hist(raw[c][brain].ravel(), bins=80, color="tab:blue")
        axes[0, c].set_title(f"{name}: raw (brain voxels)", fontsize=8)
        axes[1, c].hist(normed[c][brain].ravel(), bins=80, color="tab:green")
        axes[1, c].set_title(f"{name}: clipped + z-scored", fontsize=8)
    return finish(fig, save)


def _diffused(plane: np.ndarray, kappa: float, iterations: int, gamma: float = 0.1, option: int = 1) -> np.ndarray:
    from .data import anisotropic_diffusion
    x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None]
    return anisotropic_diffusion(x, kappa, gamma, iterations, option)[0, 0].numpy()


def plot_diffusion_sweep(plane: np.ndarray, kappas: Sequence[float] = (0.05, 0.2, 0.5),
                         iterations: Sequence[int] = (1, 5, 20), save=None):
    """Perona-Malik sweep on one [0,1] slice: rows = iterations, columns = before + kappas."""
    fig, axes = _grid(len(iterations), len(kappas) + 1, 2.3)
    for r, n in enumerate(iterations):
        axes[r, 0].imshow(plane, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title("before", fontsize=8)
        for c, kappa in enumerate(kappas, start=1):
            axes[r, c].imshow(_diffused(plane, kappa, n), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"kappa={kappa:g}, {n} it.", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    return finish(fig, save)


def diffusion_widget(plane: np.ndarray):
    """Sliders for kappa, iterations, gamma and the conduction function on one [0,1] slice."""
    import ipywidgets as w

    def show(kappa, iterations, gamma, option):
        out = _diffused(plane, kappa, iterations, gamma, option)
        fig, axes = _grid(1, 3, 3.0)
        for ax, img, title in ((axes[0, 0], plane, "before"), (axes[0, 1], out, "after"),
                               (axes[0, 2], out - plane, "after - before")):
            ax.imshow(img, cmap="gray" if title != "after - before" else "coolwarm")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        _plt().show()

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
        fig, axes = _grid(1, len(names), 2.8)
        _slice_row(axes[0], volume, mask, z, names)
        _plt().show()

    return interactive(show, z=w.IntSlider(value=best_slice(mask), min=0, max=volume.shape[-1] - 1,
                                             description="slice", continuous_update=False))


def plot_slice(volume: np.ndarray, mask: np.ndarray, names: Sequence[str], z: int | None = None, save=None):
    """Static figure of one axial slice (default: the one with the most mask), all modalities."""
    z = best_slice(mask) if z is None else z
    fig, axes = _grid(1, len(names), 2.8)
    _slice_row(axes[0], volume, mask, z, names)
    return finish(fig, save)


def plot_items(dataset, indices: Iterable[int], title: str = "", save=None, cols: int = 6):
    """Grid of dataset items (image with its mask overlaid)."""
    indices = list(indices)
    rows = max(1, math.ceil(len(indices) / cols))
    fig, axes = _grid(rows, cols, 2.0)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, i in zip(axes.ravel(), indices):
        image, mask, meta = dataset[i]
        overlay(ax, image, mask, wrap_label(f"{meta['case']}:{meta['slice']}"))
    if title:
        fig.suptitle(title)
    return finish(fig, save)


# ------------------------------------------------------------------------ 03-05: training
def smooth(y: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred moving average (edges use the available points)."""
    window = min(window, len(y))
    if window <= 1:
        return y
    k = np.ones(window)
    return np.convolve(y, k, "same") / np.convolve(np.ones_like(y), k, "same")


def _training_axes(axes, records, label: str = ""):
    step, loss = log_series(records, "loss")
    axes[0].plot(step, smooth(loss), label=f"{label} L_CTS".strip())
    s, ls = log_series(records, "loss_s")
    if len(ls) and np.any(ls > 0):
        axes[0].plot(s, smooth(10 * ls), "--", label=f"{label} alpha L_S".strip())
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss (smoothed)")
    for key, style, name in (("val_dice_consistency", "-o", "one-step"), ("val_dice_aux", "--s", "aux head")):
        vs, vd = log_series(records, key, "val")
        if len(vd):
            axes[1].plot(vs, vd, style, ms=3, label=f"{label} {name}".strip())
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("step")
    axes[1].set_title("validation Dice (EMA weights)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)


def plot_training_log(log_path: str | Path, save=None):
    """Loss and validation Dice curves read from a training log.jsonl (no retraining needed)."""
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    _training_axes(axes, read_log(log_path))
    return finish(fig, save)


class LiveCurves:
    """A live loss / validation-Dice plot (d2l ProgressBoard style) fed from log.jsonl.

    ``update()`` re-reads the log and redraws in place through an IPython display handle;
    outside IPython it does nothing, so scripts can call it freely.
    """

    def __init__(self, log_path: str | Path):
        self.log_path, self.handle = Path(log_path), None

    def update(self, *_):
        try:
            from IPython.display import display
        except ImportError:
            return
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.1))
        _training_axes(axes, read_log(self.log_path))
        fig.tight_layout()
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def _seg_panels(image, gt, seg, i: int):
    panels = [(image, gt, "image + ground truth"), (image, seg.mask[i], "one-step sample")]
    if seg.aux_mask is not None:
        panels.append((image, seg.aux_mask[i], "aux head y_hat"))
    return panels


def plot_predictions(images, masks, seg, save=None, max_rows: int = 6):
    """Rows: image + GT, one-step consistency mask, auxiliary-head mask."""
    rows = min(max_rows, images.shape[0])
    cols = len(_seg_panels(images[0], masks[0], seg, 0))
    fig, axes = _grid(rows, cols, 2.2)
    for r in range(rows):
        for ax, (img, m, title) in zip(axes[r], _seg_panels(images[r], masks[r], seg, r)):
            overlay(ax, img, m, title if r == 0 else None)
    return finish(fig, save)


def _uncertainty_row(axes, image, gt, seg, i: int):
    overlay(axes[0], image, gt, "image + ground truth")
    maps = ((seg.prob[i], "p = (ybar+1)/2", "viridis", 1.0), (seg.std[i], "std over members", "magma", None),
            (seg.vote_variance[i], "vote variance q(1-q)", "magma", 0.25))
    for ax, (m, title, cmap, vmax) in zip(axes[1:], maps):
        im = ax.imshow(_np(m).squeeze(), cmap=cmap, vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        _plt().colorbar(im, ax=ax, fraction=0.046)


def uncertainty_widget(images, masks, seg):
    """Slider over the ensemble's items: probability, std and vote-variance maps."""
    import ipywidgets as w

    def show(item):
        fig, axes = _grid(1, 4, 2.6)
        _uncertainty_row(axes[0], images[item], masks[item], seg, item)
        _plt().show()

    return interactive(show, item=w.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="item",
                                                continuous_update=False))


def plot_uncertainty(images, masks, seg, save=None, max_rows: int = 4):
    """Static uncertainty maps of the first items of an ensemble segmentation."""
    rows = min(max_rows, images.shape[0])
    fig, axes = _grid(rows, 4, 2.5)
    for r in range(rows):
        _uncertainty_row(axes[r], images[r], masks[r], seg, r)
    return finish(fig, save)


def _case_row(axes, image, gt, pred, std, title: str):
    overlay(axes[0], image, gt, wrap_label(title))
    overlay(axes[1], image, pred, "one-step mask")
    im = axes[2].imshow(_np(std).squeeze(), cmap="magma", vmin=0, vmax=1)
    axes[2].set_title("ensemble std", fontsize=9)
    axes[2].set_axis_off()
    _plt().colorbar(im, ax=axes[2], fraction=0.046)


def cases_widget(images, masks, one_step, ensemble, names: Sequence[str], dice: Sequence[float]):
    """Slider over cases: image + expert mask, the one-step mask (with its Dice), the ensemble's std map."""
    import ipywidgets as w

    def show(case):
        fig, axes = _grid(1, 3, 2.8)
        _case_row(axes[0], images[case], masks[case], one_step.mask[case], ensemble.std[case],
                  f"{names[case]} Dice {dice[case]:.2f}")
        _plt().show()

    return interactive(show, case=w.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="case",
                                                continuous_update=False))


def plot_cases(images, masks, one_step, ensemble, names: Sequence[str], dice: Sequence[float], save=None,
               max_rows: int = 4):
    """Static figure of the first cases: expert mask, one-step mask with its Dice, ensemble std."""
    rows = min(max_rows, images.shape[0])
    fig, axes = _grid(rows, 3, 2.6)
    for r in range(rows):
        _case_row(axes[r], images[r], masks[r], one_step.mask[r], ensemble.std[r], f"{names[r]} Dice {dice[r]:.2f}")
    return finish(fig, save)


def plot_snapshot_scores(steps: Sequence[int], scores: Sequence[dict], log_path: str | Path, save=None):
    """Fig-3 style: training loss (from the log) and test Dice/IoU of the checkpoints saved over time."""
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    step, loss = log_series(read_log(log_path), "loss")
    axes[0].plot(step, smooth(loss))
    axes[0].set_yscale("log")
    axes[0].set_title("training loss L_CTS (smoothed)")
    for output, ls in (("one_step", "-"), ("aux_head", "--")):
        for key, marker in (("dice", "o"), ("iou", "s")):
            ys = [s[output][key] for s in scores if s.get(output) is not None]
            if ys:
                axes[1].plot(steps[: len(ys)], ys, ls, marker=marker, ms=3, label=f"{output} {key}")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("test Dice / IoU of saved EMA snapshots")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("step")
    return finish(fig, save)


def plot_variant_convergence(logs: dict[str, str | Path], save=None):
    """Fig-4 style: training loss and validation Dice of several runs (e.g. CTS-nM vs CTS-M)."""
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    for label, path in logs.items():
        records = read_log(path)
        step, loss = log_series(records, "loss_ct")
        axes[0].plot(step, smooth(loss), label=f"{label} L_CT")
        vs, vd = log_series(records, "val_dice_consistency", "val")
        axes[1].plot(vs, vd, "-o", ms=3, label=f"{label} one-step")
    axes[0].set_yscale("log")
    axes[0].set_title("consistency loss L_CT (smoothed)")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("validation Dice of the consistency sample")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return finish(fig, save)


def plot_noise_level_dice(curves: dict[str, dict], title: str = "", save=None):
    """Dice of f(x^m + sigma z, sigma) > 0 against sigma, one line per run (evaluate.dice_by_noise_level).

    A curve entry is {"sigma": [...], "dice": [...]} or, for several seeds, {"sigma": [...], "dice": [[...], ...]}
    (drawn as the mean with a min-max band). The right end, sigma_max, is what one-step sampling uses.
    """
    fig, ax = _plt().subplots(figsize=(6, 3.3))
    for label, c in curves.items():
        sig, d = np.asarray(c["sigma"], dtype=float), np.asarray(c["dice"], dtype=float)
        if d.ndim == 2:
            ax.fill_between(sig, d.min(0), d.max(0), alpha=0.2)
            d = d.mean(0)
        ax.plot(sig, d, "-o", ms=3, label=label)
    ax.axvline(precond.SIGMA_MAX, color="grey", ls=":", lw=1)
    ax.text(precond.SIGMA_MAX, 0.02, "one step ", ha="right", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("Dice of f(x_sigma, sigma)")
    ax.set_title(title or "where the consistency chain holds", fontsize=9)
    ax.legend(fontsize=7)
    return finish(fig, save)


def noise_level_curves(quality_json: str | Path) -> dict[str, dict]:
    """{row label: {"sigma", "dice" (one list per seed)}} from a benchmarks/quality.py JSON with noise levels."""
    data = json.loads(Path(quality_json).read_text())
    curves = {}
    for r in data.get("rows", []):
        if "noise_levels" not in r:
            continue
        per_seed = [e["noise_levels_dice"] for e in r.get("per_seed", []) if "noise_levels_dice" in e]
        curves[r["label"]] = {"sigma": r["noise_levels"]["sigma"], "dice": per_seed or [r["noise_levels"]["dice"]]}
    return curves


# -------------------------------------------------------------------------------- 06: sampling
def _multistep_row(axes, model, image, mask, levels, seed: int = 0):
    from .sampling import segment
    seg = segment(model, image[None], levels=levels, seeds=[seed])
    overlay(axes[0], image, mask, "image + ground truth")
    overlay(axes[1], image, seg.mask[0], f"{seg.steps}-step sample" + (f", tau={levels[0]:g}" if levels else ""))
    axes[2].imshow(_np(seg.sample_mean[0]).squeeze(), cmap="coolwarm", vmin=-1, vmax=1)
    axes[2].set_title("sample in mask units [-1, 1]", fontsize=8)
    axes[2].set_axis_off()


def multistep_widget(model, images, masks):
    """Sliders: test item, number of steps (1 or 2) and the intermediate level tau of a 2-step sample."""
    import ipywidgets as w

    def show(item, two_step, tau):
        fig, axes = _grid(1, 3, 2.6)
        _multistep_row(axes[0], model, images[item], masks[item], (tau,) if two_step else ())
        _plt().show()

    slider = dict(continuous_update=False)
    return interactive(show, item=w.IntSlider(value=0, min=0, max=len(images) - 1, **slider),
                         two_step=w.Checkbox(value=True, description="two steps"),
                         tau=w.FloatLogSlider(value=0.8, base=10, min=-1, max=1.5, step=0.05, **slider))


def plot_multistep(model, images, masks, levels: Sequence[float] = (0.5, 2.0), rows: int = 3, save=None):
    """Rows of items: the one-step sample, then two-step samples with each intermediate level."""
    settings = [()] + [(float(t),) for t in levels]
    fig, axes = _grid(rows * len(settings), 3, 2.2)
    for r in range(rows):
        for k, lv in enumerate(settings):
            _multistep_row(axes[r * len(settings) + k], model, images[r], masks[r], lv)
    return finish(fig, save)


def plot_sampling_cost(timing: Sequence[dict], sweep: Sequence[dict], save=None):
    """Milliseconds per image of each sampler, and the validation Dice of the 2-step level sweep."""
    fig, axes = _plt().subplots(1, 2, figsize=(10, 3.3))
    names = [r["sampler"] for r in timing]
    axes[0].barh(names, [r["ms_per_image"] for r in timing])
    for y, r in enumerate(timing):
        axes[0].text(r["ms_per_image"], y, f" {r['network_evals']} eval(s)", va="center", fontsize=7)
    axes[0].set_xlabel(f"ms per image (batch {timing[0]['batch']}, {timing[0]['device']})")
    axes[0].set_title("sampling cost")
    taus = [r["tau"] for r in sweep]
    axes[1].plot(taus, [r["val_dice"] for r in sweep], "-o")
    axes[1].set_xscale("log")
    axes[1].set_xticks(taus, [f"{t:g}" for t in taus])
    axes[1].minorticks_off()
    axes[1].set_xlabel("intermediate level tau of the 2-step sampler")
    axes[1].set_title("validation Dice (choose tau here, never on test)")
    return finish(fig, save)


def plot_resolution_ceilings(rows: Sequence[dict], save=None):
    """Dice of the resized-and-mapped-back expert masks against the working size, one line per dataset."""
    fig, ax = _plt().subplots(figsize=(5.5, 3.3))
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        ax.plot([r["size"] for r in mine], [100 * r["dice_tumour"] for r in mine], "-o", label=name)
    sizes = sorted({r["size"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("working size (px)")
    ax.set_ylabel("Dice on the native grid (%)")
    ax.set_title("resolution ceiling: expert masks resized and back\n(slices with tumour)", fontsize=9)
    if rows:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no file-backed dataset here", ha="center", va="center", transform=ax.transAxes)
    return finish(fig, save)

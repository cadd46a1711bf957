"""Notebook 01's figures: the Karras grid, the boundary-condition scalings, sigma_data, noising, the curricula."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .. import precond, schedules
from .base import finish, grid, interactive, plt

SIGMA_DATA_COLOURS = ("tab:purple", "tab:blue", "tab:green", "tab:red")


def sigma_axis(n: int = 400, sigma_min: float = precond.SIGMA_MIN, sigma_max: float = precond.SIGMA_MAX) -> torch.Tensor:
    """Log-spaced noise levels from sigma_min to sigma_max (float64)."""
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n, dtype=torch.float64)


def skip_out_crossing(sigma_data: float = precond.SIGMA_DATA) -> float:
    """The noise level where c_skip(t) = c_out(t), by bisection on the log scale (c_skip - c_out falls monotonically)."""
    lo, hi = math.log(precond.SIGMA_MIN * 1.0001), math.log(precond.SIGMA_MAX)
    t = lambda log_t: torch.tensor(math.exp(log_t), dtype=torch.float64)  # noqa: E731
    gap = lambda log_t: float(precond.c_skip(t(log_t), sigma_data) - precond.c_out(t(log_t), sigma_data))  # noqa: E731
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return math.exp((lo + hi) / 2)


def plot_karras_grids(ns: Sequence[int] = (2, 11, 201), save=None):
    """The ascending Karras grid t_1..t_N for a few N, on a linear and on a log axis (docs/method.md section 1.1)."""
    fig, axes = plt().subplots(1, 2, figsize=(11, 2.2 + 0.3 * len(ns)), sharey=True)
    for ax, scale in zip(axes, ("linear", "log")):
        for row, n in enumerate(ns):
            g = precond.karras_grid(n).numpy()
            ax.scatter(g, np.full_like(g, row), s=14 if n < 50 else 4)
        ax.set_xscale(scale)
        ax.set_xlabel(r"noise level $t_n$ ($=\sigma$)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(ns)), [f"N = {n}" for n in ns])
    axes[0].set_title("linear axis: the levels crowd near $\\sigma_{min}$", fontsize=9)
    axes[1].set_title("log axis: the ratio $t_{n+1}/t_n$ shrinks toward $\\sigma_{max}$", fontsize=9)
    fig.suptitle(r"Karras grid $t_n = (\sigma_{min}^{1/\rho} + \frac{n-1}{N-1}(\sigma_{max}^{1/\rho}-\sigma_{min}^{1/\rho}))^\rho$,"
                 r" $\rho=7$", fontsize=10)
    return finish(fig, save)


def _scalings_axes(ax, sigma_data: float, marker: float | None = None):
    s = sigma_axis()
    skip, out, cin = precond.scalings(s, sigma_data)
    for y, name, colour in ((skip, r"$c_{skip}$", "tab:blue"), (out, r"$c_{out}$", "tab:orange"), (cin, r"$c_{in}$", "tab:green")):
        ax.plot(s.numpy(), y.numpy(), color=colour, label=name)
    cross = skip_out_crossing(sigma_data)
    ax.plot([cross], [float(precond.c_skip(cross, sigma_data))], "ko", ms=4)
    ax.annotate(f"$c_{{skip}}=c_{{out}}$ at $\\sigma$={cross:.3g}", (cross, float(precond.c_skip(cross, sigma_data))),
                (cross * 3, 1.0), fontsize=8, arrowprops=dict(arrowstyle="->", lw=0.7))
    ax.axvline(precond.SIGMA_MIN, color="k", lw=0.8, ls=":")
    if marker is not None:
        ax.axvline(marker, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, max(2.05, float(cin.max()) * 1.05))
    ax.set_xlabel(r"noise level $\sigma$")
    ax.set_ylabel("scaling (dimensionless)")


def plot_scalings(sigma_data: float = precond.SIGMA_DATA, save=None):
    """c_skip, c_out, c_in over sigma with the boundary sigma_min and the skip/output crossing marked
    (docs/method.md section 1.2)."""
    fig, ax = plt().subplots(figsize=(7, 3.6))
    _scalings_axes(ax, sigma_data)
    ax.annotate(r"boundary $\sigma_{min}$: $c_{skip}=1,\ c_{out}=0$", (precond.SIGMA_MIN, 1.0), (0.006, 1.5),
                arrowprops=dict(arrowstyle="->", lw=0.7), fontsize=8)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Consistency-model preconditioning, $\\sigma_{{data}}$ = {sigma_data:g}", fontsize=10)
    return finish(fig, save)


def scalings_widget():
    """Sliders for sigma (log) and sigma_data; shows the curves and the three values at sigma."""
    import ipywidgets as w

    def show(sigma, sigma_data):
        fig, ax = plt().subplots(figsize=(7, 3.4))
        _scalings_axes(ax, sigma_data, marker=sigma)
        skip, out, cin = (float(v) for v in precond.scalings(sigma, sigma_data))
        ax.set_title(f"sigma={sigma:.4g}: c_skip={skip:.4g}  c_out={out:.4g}  c_in={cin:.4g}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        plt().show()

    return interactive(
        show,
        sigma=w.FloatLogSlider(value=1.0, base=10, min=math.log10(precond.SIGMA_MIN), max=math.log10(precond.SIGMA_MAX),
                               step=0.05, description="sigma", continuous_update=False),
        sigma_data=w.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.05, description="sigma_data", continuous_update=False))


def plot_sigma_data_effect(values: Sequence[float] = (0.25, 0.5, 1.0), save=None):
    """How sigma_data moves the skip/output crossing, and the RMS of the network input c_in x_t for a
    {-1,+1} mask (E[x^2] = 1, so RMS = c_in sqrt(1 + t^2)). One colour per sigma_data in both panels."""
    from matplotlib.lines import Line2D
    fig, axes = plt().subplots(1, 2, figsize=(11, 3.6))
    s = sigma_axis()
    for sd, colour in zip(values, SIGMA_DATA_COLOURS):
        skip, out, cin = precond.scalings(s, sd)
        axes[0].plot(s, skip, color=colour)
        axes[0].plot(s, out, "--", color=colour)
        cross = skip_out_crossing(sd)
        axes[0].plot([cross], [float(precond.c_skip(cross, sd))], "o", color=colour, ms=4)
        axes[1].plot(s, (cin * torch.sqrt(s**2 + 1.0)).numpy(), color=colour)
    sd_lines = [Line2D([], [], color=c, label=f"$\\sigma_{{data}}$ = {sd:g}") for sd, c in zip(values, SIGMA_DATA_COLOURS)]
    kinds = [Line2D([], [], color="k", label=r"$c_{skip}$"), Line2D([], [], color="k", ls="--", label=r"$c_{out}$"),
             Line2D([], [], color="k", marker="o", ls="", ms=4, label="crossing")]
    axes[0].legend(handles=sd_lines + kinds, fontsize=7)
    axes[1].legend(handles=sd_lines, fontsize=7)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(r"noise level $\sigma$")
    axes[0].set_ylabel("scaling")
    axes[0].set_title("skip and network parts of f: where they cross", fontsize=9)
    axes[1].set_ylabel(r"RMS of $c_{in} x_t$")
    axes[1].set_title(r"network input for a $\{-1,+1\}$ mask (target RMS 1, dotted)", fontsize=9)
    axes[1].axhline(1.0, color="k", lw=0.6, ls=":")
    return finish(fig, save)


def _noised(mask_pm1: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    z = torch.randn(mask_pm1.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mask_pm1.double() + sigma * z


def _noising_row(axes, mask_pm1, sigma: float, sigma_data: float = precond.SIGMA_DATA):
    x = _noised(mask_pm1, sigma)
    skip, out, cin = (float(v) for v in precond.scalings(sigma, sigma_data))
    rms = float((cin * x).square().mean().sqrt())
    panels = ((x, f"$x_t = x^m + {sigma:.3g}\\,z$"), (cin * x, f"$c_{{in}} x_t$ (RMS {rms:.2f})"),
              (skip * x, f"$c_{{skip}} x_t$ ($c_{{skip}}$={skip:.2g})"))
    shown = None
    for ax, (img, title) in zip(axes, panels):   # one fixed grey scale for every panel: [-2.5, 2.5]
        shown = ax.imshow(img.squeeze().numpy(), cmap="gray", vmin=-2.5, vmax=2.5, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(f"$\\sigma$ = {sigma:g}", fontsize=9)
    return shown


def noising_widget(mask_pm1: torch.Tensor):
    """Slider over sigma: the noised mask x_t, the network input c_in x_t and the skip part c_skip x_t."""
    import ipywidgets as w

    def show(sigma):
        fig, axes = grid(1, 3, 2.6, layout="constrained")
        shown = _noising_row(axes[0], mask_pm1, sigma)
        fig.colorbar(shown, ax=list(axes[0]), fraction=0.03, label="mask units (clipped at ±2.5)")
        plt().show()

    return interactive(show, sigma=w.FloatLogSlider(value=0.5, base=10, min=-2.7, max=1.9, step=0.1,
                                                      description="sigma", continuous_update=False))


def plot_noising(mask_pm1: torch.Tensor, sigmas: Sequence[float] = (0.002, 0.1, 0.5, 2.0, 80.0), save=None):
    """Rows of (x_t, c_in x_t, c_skip x_t) at a few noise levels, one grey scale for all panels."""
    fig, axes = grid(len(sigmas), 3, 2.3, layout="constrained")
    shown = None
    for row, s in zip(axes, sigmas):
        shown = _noising_row(row, mask_pm1, s)
    fig.colorbar(shown, ax=list(axes.ravel()), fraction=0.03, label="mask units (clipped at ±2.5)")
    return finish(fig, save)


def _iteration_axis(ax, total_steps: int):
    ax.set_xlabel("training iteration k")
    if total_steps > 10_000:
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlim(0, total_steps)


def plot_ct_schedule(total_steps: int = 600_000, s0: int = 2, s1: int = 200, mu0: float = 0.95, save=None):
    """N(k) and mu(k) of CT over the training run (docs/method.md section 1.4); a log-like axis for long runs."""
    k = np.unique(np.concatenate([np.arange(0, min(1000, total_steps + 1)), np.linspace(0, total_steps, 600).astype(int)]))
    n = [schedules.ct_num_scales(int(i), total_steps, s0, s1) for i in k]
    mu = [schedules.ct_target_decay(int(i), total_steps, s0, s1, mu0) for i in k]
    fig, axes = plt().subplots(1, 2, figsize=(10, 3.3))
    axes[0].step(k, n, where="post")
    axes[0].set_ylabel("N(k), levels in the grid")
    axes[0].set_title(f"N(k): grid points (s0={s0}, s1={s1}, K={total_steps:,})", fontsize=9)
    axes[1].step(k, mu, where="post")
    axes[1].set_ylabel(r"$\mu(k)$")
    axes[1].set_title(r"$\mu(k) = \mu_0^{s_0/n(k)}$: target EMA rate", fontsize=9)
    for ax in axes:
        _iteration_axis(ax, total_steps)
        ax.grid(alpha=0.3)
    return finish(fig, save)


def schedule_widget(total_steps: int = 600_000):
    """Slider over k: the grid used at iteration k (N(k) points) and the target rate mu(k)."""
    import ipywidgets as w

    def show(k):
        n = schedules.ct_num_scales(k, total_steps)
        fig, ax = plt().subplots(figsize=(8, 1.8))
        g = precond.karras_grid(n).numpy()
        ax.scatter(g, np.zeros_like(g), s=8)
        ax.set_xscale("log")
        ax.set_xlabel(r"noise level $\sigma$")
        ax.set_yticks([])
        ax.set_title(f"k={k:,}: N(k)={n}, mu(k)={schedules.ct_target_decay(k, total_steps):.5f}", fontsize=9)
        plt().show()

    return interactive(show, k=w.IntSlider(value=1000, min=0, max=total_steps, step=1000, description="k",
                                             continuous_update=False))


def plot_curricula(total_steps: int = 400_000, save=None):
    """CT (sqrt, s1=200) vs iCT (doubling, s0=10, s1=1280) curricula, and iCT's lognormal p(i) at N=11."""
    k = np.linspace(0, total_steps, 800).astype(int)
    ct = [schedules.ct_num_scales(int(i), total_steps) for i in k]
    ict = [schedules.ict_num_scales(int(i), total_steps) for i in k]
    fig, axes = plt().subplots(1, 2, figsize=(10, 3.3))
    axes[0].plot(k / 1000, ct, label="CT: N(k) = ceil(sqrt(...)) (s0=2, s1=200)")
    axes[0].step(k / 1000, ict, where="post", label="iCT: min(s0 2^floor(k/K'), s1)+1 (s0=10, s1=1280)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training iteration k (thousands)")
    axes[0].set_ylabel("N(k), levels in the grid")
    axes[0].set_title(f"number of grid points, K={total_steps:,}", fontsize=9)
    axes[0].legend(fontsize=7)
    p = schedules.ict_index_probs(precond.karras_grid(11)).numpy()
    axes[1].bar(np.arange(1, 11), p)
    axes[1].set_xlabel(r"pair index i ($\sigma_i$, $\sigma_{i+1}$), N=11")
    axes[1].set_ylabel("probability p(i)")
    axes[1].set_title("iCT lognormal index probabilities p(i)", fontsize=9)
    return finish(fig, save)

"""Notebook 04's look inside CTS-M / CTS-FM: the signals e_s of h, the SE gate weights, the FF-Parser's filter.

`fusion_inputs` records what each fusion module receives during one forward pass (g's decoder
feature h and the signal e_s after the FF-Parser), so the notebook can recompute the fusion by hand.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import finish, grid, image_axes, plt, to_numpy


@torch.no_grad()
def fusion_inputs(model, x: torch.Tensor, sigma: float, image: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """{scale s: (h, e)}: the inputs of each fusion module during f_theta(x, sigma; image)."""
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [fuser.register_forward_pre_hook(lambda _m, args, s=int(site): seen.__setitem__(s, (args[0], args[1])))
             for site, fuser in model.fusers.items()]
    try:
        model(x, torch.full((len(x),), float(sigma), dtype=torch.float64), image)
    finally:
        for hook in hooks:
            hook.remove()
    return dict(sorted(seen.items()))


def plot_signals(image, feats: dict[int, torch.Tensor], channels: int = 4, save=None):
    """Rows = scales s of h's decoder (resolution H/2^s); the image, then the ``channels`` most varied
    channels of e_s for one image, on one symmetric colour scale per row."""
    fig, axes = grid(len(feats), channels + 1, 2.0, layout="constrained")
    for row, (s, e) in zip(axes, feats.items()):
        e = to_numpy(e)                                     # (C, h, w) of one image
        image_axes(row[0], image)
        row[0].set_ylabel(f"s = {s}: {e.shape[-2]}x{e.shape[-1]} px", fontsize=8)
        order = np.argsort(-e.reshape(len(e), -1).std(1))[:channels]
        vmax = float(np.abs(e[order]).max()) or 1.0
        shown = None
        for ax, c in zip(row[1:], order):
            shown = ax.imshow(e[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_title(f"channel {c}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(shown, ax=list(row[1:]), fraction=0.03, label="activation")
    axes[0, 0].set_title("image", fontsize=8)
    return finish(fig, save)


def plot_gates(gates: dict[float, dict[int, torch.Tensor]], save=None):
    """SE gate weights a per channel, one panel per scale s, one line per noise level sigma (mean over
    images, band = min-max over images); a = 1 passes the signal fully, 0 blocks it."""
    from matplotlib.ticker import MaxNLocator
    scales = sorted(next(iter(gates.values())))
    fig, axes = plt().subplots(1, len(scales), figsize=(4.2 * len(scales), 3.2), squeeze=False)
    for ax, s in zip(axes[0], scales):
        for i, (sigma, per_scale) in enumerate(gates.items()):
            a = to_numpy(per_scale[s]).reshape(per_scale[s].shape[0], -1)       # (images, channels)
            ch = np.arange(a.shape[1])
            ax.fill_between(ch, a.min(0), a.max(0), alpha=0.2, color=f"C{i}")
            ax.plot(ch, a.mean(0), "-o", ms=2, color=f"C{i}", label=f"sigma = {sigma:g}")
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("channel of g's decoder at this scale")
        ax.set_title(f"gate a at scale s = {s}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("gate weight a (0 blocks, 1 passes)")
    axes[0, 0].legend(fontsize=7)
    return finish(fig, save)


def filter_gain(parser) -> np.ndarray:
    """|W| of an FF-Parser averaged over its channels, rows fft-shifted so the zero frequency is centred: (h, w//2+1)."""
    w = torch.view_as_complex(parser.weight.detach().float().contiguous()).abs().mean(0)
    return np.fft.fftshift(to_numpy(w), axes=0)


def plot_ffparser_filters(parsers: dict[str, torch.nn.Module], save=None):
    """The learned gain |W| of every FF-Parser site (mean over channels) on one diverging colour scale centred
    at 1, the identity it starts from: red frequencies are amplified, blue ones damped."""
    gains = {site: filter_gain(p) for site, p in parsers.items()}
    spread = max(0.05, max(float(np.abs(g - 1).max()) for g in gains.values()))
    fig, axes = grid(1, len(gains), 2.8, layout="constrained")
    shown = None
    for ax, (site, g) in zip(axes[0], gains.items()):
        shown = ax.imshow(g, cmap="RdBu_r", vmin=1 - spread, vmax=1 + spread, origin="lower", aspect="auto",
                          extent=(0, 0.5, -0.5, 0.5))
        ax.set_title(f"scale s = {site}: {g.shape[0]}x{2 * (g.shape[1] - 1)} px", fontsize=8)
        ax.set_xlabel("horizontal frequency (cycles/px)", fontsize=7)
    axes[0, 0].set_ylabel("vertical frequency (cycles/px)", fontsize=7)
    fig.colorbar(shown, ax=list(axes[0]), fraction=0.04, label="|W| (1 = passed unchanged)")
    return finish(fig, save)


def gate_spread(gates: dict[float, dict[int, torch.Tensor]]) -> list[dict]:
    """Rows (sigma, scale, channels, mean, min, max of the gate weights) for a table."""
    rows = []
    for sigma, per_scale in gates.items():
        for s, a in per_scale.items():
            a = to_numpy(a)
            rows.append({"sigma": sigma, "scale": s, "channels": a.shape[1], "mean a": float(a.mean()),
                         "min a": float(a.min()), "max a": float(a.max())})
    return rows

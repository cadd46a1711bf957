"""Notebook 06's figures: one-step vs 2-step masks, the anatomy of a 2-step sample, and what sampling costs."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import finish, grid, image_axes, interactive, plane, plt, seg_legend, seg_panel


def _settings(levels: Sequence[float]) -> list[tuple[str, tuple]]:
    return [("1 step", ())] + [(f"2 steps, tau={t:g}", (float(t),)) for t in levels]


def plot_multistep(model, images, masks, levels: Sequence[float] = (0.5, 2.0), items: int = 4, seed: int = 0, save=None):
    """Columns = test items, rows = samplers (one step, then 2-step samples at each level tau); every
    panel is the sample's mask against the expert's (outlines, error fills, Dice)."""
    from ..sampling import segment
    settings = _settings(levels)
    n = min(items, len(images))
    fig, axes = grid(len(settings), n, 2.3)
    for r, (name, lv) in enumerate(settings):
        seg = segment(model, images[:n], levels=lv, seeds=[seed + i for i in range(n)])
        for c in range(n):
            seg_panel(axes[r, c], images[c], masks[c], seg.mask[c], f"item {c}" if r == 0 else "")
        axes[r, 0].set_ylabel(name, fontsize=9)
    seg_legend(fig, y=-0.03)
    return finish(fig, save)


def multistep_widget(model, images, masks):
    """Sliders: test item, one or two steps, and the intermediate level tau of a 2-step sample."""
    import ipywidgets as w
    from ..sampling import segment

    def show(item, two_step, tau):
        levels = (tau,) if two_step else ()
        seg = segment(model, images[item:item + 1], levels=levels, seeds=[item])
        fig, axes = grid(1, 2, 3.0)
        seg_panel(axes[0, 0], images[item], masks[item], seg.mask[0], f"{seg.steps}-step sample")
        shown = axes[0, 1].imshow(plane(seg.sample_mean[0]), cmap="coolwarm", vmin=-1, vmax=1)
        axes[0, 1].set_title("sample in mask units", fontsize=8)
        axes[0, 1].set_xticks([])
        axes[0, 1].set_yticks([])
        fig.colorbar(shown, ax=axes[0, 1], fraction=0.046)
        plt().show()

    slider = dict(continuous_update=False)
    return interactive(show, item=w.IntSlider(value=0, min=0, max=len(images) - 1, **slider),
                         two_step=w.Checkbox(value=True, description="two steps"),
                         tau=w.FloatLogSlider(value=0.8, base=10, min=-1, max=1.5, step=0.05, **slider))


def plot_two_step_anatomy(image, expert, parts: dict, save=None):
    """One 2-step sample taken apart (all in mask units, one colour scale): the one-step output y1,
    the re-noised x = y1 + sqrt(tau^2 - sigma_min^2) z, the skip part c_skip(tau) x, the network part
    c_out(tau) F and their sum y2, and y2's mask against the expert's."""
    keys = [("y1", "one step: $y_1$"), ("x", r"re-noised $x$ at $\tau$"), ("skip", r"$c_{skip}(\tau)\,x$"),
            ("net", r"$c_{out}(\tau)\,F_\theta$"), ("y2", r"$y_2$ = sum, clamped")]
    fig, axes = grid(1, len(keys) + 1, 2.0, layout="constrained")
    shown = None
    for ax, (key, title) in zip(axes[0], keys):
        shown = ax.imshow(plane(parts[key]), cmap="coolwarm", vmin=-1.5, vmax=1.5, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes[0, :-1]), location="right", fraction=0.02, label="mask units (clipped at ±1.5)")
    seg_panel(axes[0, -1], image, expert, plane(parts["y2"]) > 0, "2-step mask")
    fig.suptitle(f"a 2-step sample at tau = {parts['tau']:g}: c_skip = {parts['c_skip']:.3f}, c_out = {parts['c_out']:.3f}",
                 fontsize=9)
    return finish(fig, save)


def plot_sampling_cost(timing: Sequence[dict], sweep: Sequence[dict], one_step_val_dice: float | None = None, save=None):
    """Milliseconds per image of each sampler (log axis, network evaluations written beside each bar),
    and the validation Dice of the 2-step level sweep on the full [0, 1] Dice scale."""
    fig, axes = plt().subplots(1, 2, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1.3, 1]})
    names = [r["sampler"] for r in timing]
    ms = [r["ms_per_image"] for r in timing]
    axes[0].barh(names, ms, color=["tab:red" if "diffusion" in n.lower() else "tab:gray" if "u-net" in n.lower()
                                   else "tab:blue" for n in names])
    for y, r in enumerate(timing):
        axes[0].text(r["ms_per_image"], y, f" {r['network_evals']} eval(s), {r['ms_per_image']:.2f} ms", va="center",
                     fontsize=7)
    axes[0].set_xscale("log")
    axes[0].set_xlim(min(ms) / 2, max(ms) * 20)
    axes[0].invert_yaxis()
    axes[0].set_xlabel(f"ms per image, log axis (batch {timing[0]['batch']}, {timing[0]['device']}, "
                       f"{timing[0]['threads']} thread(s))")
    axes[0].set_title("sampling cost", fontsize=9)
    taus = [r["tau"] for r in sweep]
    axes[1].plot(taus, [r["val_dice"] for r in sweep], "-o", label="2 steps")
    if one_step_val_dice is not None:
        axes[1].axhline(one_step_val_dice, color="k", ls=":", lw=1, label="1 step")
    axes[1].set_xscale("log")
    axes[1].set_xticks(taus, [f"{t:g}" for t in taus])
    axes[1].minorticks_off()
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel(r"intermediate level $\tau$ of the 2-step sampler")
    axes[1].set_ylabel("validation Dice")
    axes[1].set_title("choose tau here (validation), never on test", fontsize=9)
    axes[1].legend(fontsize=7)
    axes[1].grid(alpha=0.3)
    return finish(fig, save)


def speckle(mask: np.ndarray) -> int:
    """Isolated foreground or background pixels: those whose 4 neighbours all carry the other label."""
    m = np.pad(np.asarray(mask, dtype=bool), 1, mode="edge")
    centre = m[1:-1, 1:-1]
    neighbours = [m[:-2, 1:-1], m[2:, 1:-1], m[1:-1, :-2], m[1:-1, 2:]]
    return int(np.all([nb != centre for nb in neighbours], axis=0).sum())


def plot_one_step_story(model, images, masks, seed: int = 0, save=None):
    """What CTS does, one row per image: the image, the noise x_T = sigma_max z, the single network
    evaluation f(x_T, sigma_max; image) in mask units, and its mask against the expert's."""
    import torch

    from ..sampling import seeded_noise
    n = len(images)
    z = seeded_noise((n, 1, *images.shape[-2:]), [seed + i for i in range(n)], images.device)
    with torch.no_grad():
        x_top = model.cfg.sigma_max * z
        y = model(x_top, torch.full((n,), model.cfg.sigma_max, dtype=torch.float64), images).denoised.clamp(-1, 1)
    fig, axes = grid(n, 4, 2.3, layout="constrained")
    shown = None
    for r in range(n):
        image_axes(axes[r, 0], images[r])
        for ax, values, title in ((axes[r, 1], z[r], r"noise $x_T = \sigma_{max} z$ (shown as z)"),
                                  (axes[r, 2], y[r], r"one evaluation $f_\theta(x_T, \sigma_{max}; x^d)$")):
            shown = ax.imshow(plane(values), cmap="coolwarm", vmin=-1.5, vmax=1.5, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if r == 0 else "", fontsize=8)
        seg_panel(axes[r, 3], images[r], masks[r], plane(y[r]) > 0, "mask = f > 0 vs expert" if r == 0 else "")
    axes[0, 0].set_title("image $x^d$ (the condition)", fontsize=8)
    fig.colorbar(shown, ax=list(axes[:, 1:3].ravel()), location="bottom", fraction=0.05, label="mask units")
    seg_legend(fig, y=-0.06)
    return finish(fig, save)

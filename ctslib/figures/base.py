"""What every tutorial figure shares: headless-aware widgets, saving, colours, and the segmentation panel.

Conventions: every ``*_widget`` returns an ipywidgets object whose sliders use
``continuous_update=False``, and the notebook follows it with the matching static ``plot_*`` figure,
so an executed notebook still shows the picture. Every ``plot_*`` takes ``save=PATH`` and writes a
PNG there. Matplotlib is imported lazily so that importing ``ctslib.figures`` stays cheap.

Segmentation panels draw the expert and the predicted outline on the image in one panel, fill the
false positives and false negatives in their own colours and put the Dice in the title.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import torch

HEADLESS_ENV = "CTS_HEADLESS"   # set by `reproduce` and the test run: notebooks executed without a browser

# One colour per meaning, in every figure.
EXPERT = "#00e5ff"              # expert outline (cyan)
PREDICTED = "#ffd400"           # predicted outline (yellow)
FALSE_POS = "#ff2bd6"           # predicted, not expert (magenta fill)
FALSE_NEG = "#3a6bff"           # expert, not predicted (blue fill)
MASK_CMAP = "autumn"            # plain mask overlays (data notebooks): opaque red-yellow on a grey image
OVERLAY_ALPHA = 0.45
ERROR_ALPHA = 0.55
STD_CMAP = "magma"
RECIPE_COLOURS = {"paper": "tab:orange", "anchored": "tab:blue"}
VARIANT_COLOURS = {"CTS-nM": "tab:gray", "CTS-M": "tab:blue", "CTS-FM": "tab:green"}


def interactive(show, **controls):
    """``ipywidgets.interactive(show, **controls)``, except in headless runs ($CTS_HEADLESS=1).

    Executed headlessly (papermill, nbval) no one can move a slider, and nbclient can miss the
    kernel's idle message when a cell's first widget draw is captured into an Output widget
    (jupyter/nbclient#312): the run then hangs. There the callback draws once at the sliders'
    defaults as plain cell output (so it is still executed) and the sliders come back unwired.
    In JupyterLab the widget draws into itself and redraws on every change.
    """
    import ipywidgets as w
    if os.environ.get(HEADLESS_ENV, "").strip() not in ("", "0"):
        show(**{name: control.value for name, control in controls.items()})
        return w.VBox([*controls.values(), w.HTML("<i>headless run: the sliders move in JupyterLab</i>")])
    return w.interactive(show, **controls)


def plt():
    """matplotlib.pyplot, imported on first use."""
    import matplotlib.pyplot as pyplot
    return pyplot


def finish(fig, save: str | Path | None = None):
    """Tight layout (unless the figure has its own layout engine), write a PNG to ``save`` (folders
    created), and return the figure."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, dpi=110, bbox_inches="tight")
    return fig


def to_numpy(x) -> np.ndarray:
    """A tensor or array as a float numpy array on the CPU."""
    if torch.is_tensor(x):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def plane(x) -> np.ndarray:
    """The (H,W) plane of a (1,H,W), (1,1,H,W) or (H,W) map."""
    a = to_numpy(x)
    return a.reshape(a.shape[-2:])


def grid(rows: int, cols: int, size: float = 2.2, **kw):
    """A rows x cols grid of square-ish axes (always a 2-D array of axes)."""
    return plt().subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False, **kw)


def display_channel(image, channel: int | None = None) -> np.ndarray:
    """(H,W) picture of a (C,H,W) image: ``channel``, else the FLAIR-like one
    (BraTS [t1,t1ce,t2,flair] -> 3, LGG [pre,FLAIR,post] -> 1, otherwise 0)."""
    a = to_numpy(image)
    if a.ndim == 2:
        return a
    if channel is None:
        channel = {4: 3, 3: 1}.get(a.shape[0], 0)
    return a[channel]


def image_axes(ax, image, channel: int | None = None):
    """The image in grey, no ticks (pixel axes carry no information a reader needs)."""
    ax.imshow(display_channel(image, channel), cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def overlay(ax, image, mask=None, title: str | None = None, channel: int | None = None, alpha: float = OVERLAY_ALPHA,
            cmap: str = MASK_CMAP):
    """Grey image with the binary ``mask`` filled in colour (transparent where 0): data, not predictions."""
    image_axes(ax, image, channel)
    if mask is not None:
        m = plane(mask) > 0.5
        ax.imshow(np.ma.masked_where(~m, m.astype(float)), cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)


def mask_dice(pred: np.ndarray, expert: np.ndarray) -> float:
    """Hard Dice of two boolean masks (both empty: 1), as ctslib.metrics computes it."""
    total = pred.sum() + expert.sum()
    return 1.0 if total == 0 else float(2 * (pred & expert).sum() / total)


def _outline(ax, mask: np.ndarray, colour: str, style: str = "-"):
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.3, linestyles=style)


def seg_panel(ax, image, expert, pred, title: str = "", channel: int | None = None) -> float:
    """Image with the expert (cyan) and predicted (yellow) outlines, false positives (magenta) and
    false negatives (blue) filled, and the Dice in the title. Returns the Dice."""
    e, p = plane(expert) > 0.5, plane(pred) > 0.5
    image_axes(ax, image, channel)
    for wrong, colour in ((p & ~e, FALSE_POS), (e & ~p, FALSE_NEG)):
        rgba = np.zeros((*wrong.shape, 4))
        rgba[wrong] = (*_rgb(colour), ERROR_ALPHA)
        ax.imshow(rgba, interpolation="nearest")
    _outline(ax, e, EXPERT)
    _outline(ax, p, PREDICTED, "--")
    d = mask_dice(p, e)
    ax.set_title(f"{title}\nDice {d:.2f}" if title else f"Dice {d:.2f}", fontsize=8)
    return d


def _rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb
    return to_rgb(colour)


def seg_legend(fig, y: float = 0.0):
    """The one legend of a figure of segmentation panels (outlines and error fills)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color=EXPERT, lw=1.5, label="expert outline"),
               Line2D([], [], color=PREDICTED, lw=1.5, ls="--", label="predicted outline"),
               Patch(color=FALSE_POS, alpha=ERROR_ALPHA, label="false positive"),
               Patch(color=FALSE_NEG, alpha=ERROR_ALPHA, label="false negative")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, y))


def shared_colorbar(fig, image, axes, label: str):
    """One colour bar for every panel drawn with ``image``'s colour scale."""
    bar = fig.colorbar(image, ax=list(np.ravel(axes)), fraction=0.03, pad=0.02)
    bar.set_label(label, fontsize=8)
    return bar


def wrap_label(text: str, width: int = 22, max_lines: int = 2) -> str:
    """A panel title that fits a small axis: wrapped at hyphens or spaces (long words split), never cut;
    beyond ``max_lines`` the middle is elided with '...' so that both ends (dataset, case number) stay."""
    lines = textwrap.wrap(text, width, break_on_hyphens=True) or [text]
    if len(lines) <= max_lines:
        return "\n".join(lines)
    keep = width * max_lines - 3
    short = text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]
    return "\n".join(textwrap.wrap(short, width, break_on_hyphens=True))


def smooth(y: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred moving average (edges use the available points)."""
    window = min(window, len(y))
    if window <= 1:
        return y
    k = np.ones(window)
    return np.convolve(y, k, "same") / np.convolve(np.ones_like(y), k, "same")


def recipe_colour(label: str, default: str | None = None) -> str | None:
    """The fixed colour of a run label that names a recipe (paper / anchored), so figures agree."""
    low = label.lower()
    return next((c for key, c in RECIPE_COLOURS.items() if key in low), default)

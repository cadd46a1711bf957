"""Training curves read from a run's log.jsonl (notebook 03, and the live plot while training).

The loss panel draws the objective term by term as it enters the total: L_CT, alpha L_S and
beta L_A (the anchor of the anchored recipe), with alpha and beta read from the run's own config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import train_config_from_dict
from ..logs import log_series, read_log
from .base import finish, plt, smooth

TERM_STYLE = {"loss": ("k", "-"), "loss_ct": ("tab:blue", "-"), "loss_s": ("tab:green", "--"), "loss_anchor": ("tab:red", "-.")}


def loss_weights(records: list[dict]) -> dict[str, float]:
    """{"alpha": weight of L_S, "beta": weight of the anchor L_A} from the log's start record (0 when absent).

    The config is read through `config.train_config_from_dict`, so logs written before the nested TrainConfig
    (a flat ``anchor`` weight) read the same way.
    """
    start = next((r for r in records if r.get("event") == "start"), {})
    if not start.get("train"):
        return {"alpha": 0.0, "beta": 0.0}
    cfg = train_config_from_dict(start["train"])
    return {"alpha": float(cfg.alpha), "beta": float(cfg.anchor.weight)}


def loss_terms(records: list[dict], alpha: float | None = None, beta: float | None = None) -> dict[str, tuple]:
    """{label: (steps, values)} of the weighted loss terms as they enter the total L_CTS:
    L_CT, alpha L_S and beta L_A (terms whose weight is 0 are left out), and the total itself."""
    w = loss_weights(records)
    alpha = w["alpha"] if alpha is None else alpha
    beta = w["beta"] if beta is None else beta
    terms = {}
    for key, weight, label in (("loss_ct", 1.0, r"$\mathcal{L}_{CT}$"), ("loss_s", alpha, rf"$\alpha\,\mathcal{{L}}_S$ ($\alpha$={alpha:g})"),
                               ("loss_anchor", beta, rf"$\beta\,\mathcal{{L}}_A$ ($\beta$={beta:g})")):
        step, value = log_series(records, key)
        if len(value) and weight > 0:
            terms[key] = (label, step, weight * value)
    step, value = log_series(records, "loss")
    terms["loss"] = (r"total $\mathcal{L}_{CTS}$", step, value)
    return terms


def _training_axes(axes, records, alpha=None, beta=None):
    for key, (label, step, value) in loss_terms(records, alpha, beta).items():
        colour, style = TERM_STYLE[key]
        axes[0].plot(step, smooth(value), style, color=colour, label=label, lw=1.6 if key == "loss" else 1.2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("loss (moving average of 5 logs)")
    axes[0].set_title("the objective term by term", fontsize=9)
    for key, style, name in (("val_dice_consistency", "-o", "one-step sample"), ("val_dice_aux", "--s", "aux head")):
        vs, vd = log_series(records, key, "val")
        if len(vd):
            axes[1].plot(vs, vd, style, ms=3, label=name)
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("Dice")
    axes[1].set_title("validation Dice (EMA weights)", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)


def plot_training_log(log_path: str | Path, alpha: float | None = None, beta: float | None = None, save=None):
    """Loss terms (L_CT, alpha L_S, beta L_A and the total) and validation Dice from a log.jsonl (no retraining).
    ``alpha``/``beta`` default to the run's own weights from the log's start record."""
    fig, axes = plt().subplots(1, 2, figsize=(11, 3.5))
    _training_axes(axes, read_log(log_path), alpha, beta)
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
        pyplot = plt()
        fig, axes = pyplot.subplots(1, 2, figsize=(11, 3.3))
        _training_axes(axes, read_log(self.log_path))
        fig.tight_layout()
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        pyplot.close(fig)


def term_shares(log_path: str | Path, frac: float = 0.25) -> dict[str, float]:
    """Share of each weighted term in the total loss over the last ``frac`` of the logged steps."""
    terms = loss_terms(read_log(log_path))
    total = terms.pop("loss")[2]
    k = max(1, int(len(total) * frac))
    return {key: float(np.sum(v[-k:]) / np.sum(total[-k:])) for key, (_, _, v) in terms.items()}

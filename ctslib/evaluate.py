"""Evaluation protocol (ALGORITHM section 4): hard Dice / IoU / HD95 per slice and per volume.

Outputs scored separately: the one-step consistency sample, the multistep sample, the E-member
ensemble, and the auxiliary head y_hat. Only the first three measure the consistency model.
Metrics are computed at the model's working resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from .device import autocast
from .metrics import SegmentationScores
from .model import CTSModel
from .sampling import segment

OUTPUTS = ("one_step", "multistep", "ensemble", "aux_head")


@dataclass
class EvalOptions:
    outputs: tuple[str, ...] = OUTPUTS
    levels: tuple[float, ...] = (0.8,)     # multistep levels after sigma_max; choose them on the val split
    members: int = 5                       # ensemble size E
    batch_size: int = 16
    limit: int | None = None               # score only the first `limit` items (quick profiles)
    seed: int = 0
    hd95: bool = True
    n_bootstrap: int = 2000
    progress: bool = True
    extra: dict = field(default_factory=dict)


def _loader(dataset: Dataset, opts: EvalOptions) -> DataLoader:
    if opts.limit is not None and opts.limit < len(dataset):
        dataset = Subset(dataset, range(opts.limit))
    return DataLoader(dataset, batch_size=opts.batch_size, shuffle=False, num_workers=0)


@torch.no_grad()
def evaluate(model: CTSModel, dataset: Dataset, mask_encoding: str = "pm1", opts: EvalOptions = EvalOptions(),
             device: torch.device | None = None) -> dict:
    """Score every requested output on `dataset`; returns {output: SegmentationScores.summary()}."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = [o for o in opts.outputs if o != "aux_head" or model.h is not None]
    scores = {o: SegmentationScores(n_bootstrap=opts.n_bootstrap, seed=opts.seed) for o in outputs}
    offset = 0
    loader = _loader(dataset, opts)
    for image, mask, meta in tqdm(loader, desc="evaluate", disable=not opts.progress, leave=False):
        image = image.to(device)
        seeds = [opts.seed * 1_000_003 + offset + i for i in range(image.shape[0])]
        offset += image.shape[0]
        gt = mask.numpy() > 0.5
        cases, slices = list(meta["case"]), [int(s) for s in meta["slice"]]
        with autocast(device):
            preds = {}
            if "one_step" in outputs or "aux_head" in outputs:
                one = segment(model, image, None, 1, seeds, mask_encoding)
                preds["one_step"], preds["aux_head"] = one.mask, one.aux_mask
            if "multistep" in outputs:
                preds["multistep"] = segment(model, image, opts.levels, 1, seeds, mask_encoding).mask
            if "ensemble" in outputs:
                preds["ensemble"] = segment(model, image, None, opts.members, seeds, mask_encoding).mask
        for name in outputs:
            scores[name].add(preds[name].cpu().numpy() > 0.5, gt, cases, slices)
    model.train(was_training)
    return {name: s.summary() for name, s in scores.items()}


def headline(results: dict) -> dict[str, float | None]:
    """Mean per-slice Dice of each output: the numbers a training log or a table shows first."""
    return {name: r["per_slice"]["dice"]["mean"] for name, r in results.items()}


def format_table(results: dict, levels: Sequence[float] = ()) -> str:
    """A plain-text table: output x (per-slice / per-volume Dice, IoU, HD95 as mean ± std)."""
    def cell(d):
        return "n/a" if d is None or d.get("mean") is None else f"{d['mean']:.4f} ± {d['std']:.4f}"
    rows = [f"{'output':<10} {'level':<10} {'Dice':<18} {'IoU':<18} {'HD95':<20} n"]
    for name, r in results.items():
        for level in ("per_slice", "per_volume"):
            x = r[level]
            rows.append(f"{name:<10} {level:<10} {cell(x['dice']):<18} {cell(x['iou']):<18} {cell(x['hd95']):<20} {x['n']}")
    return "\n".join(rows)

"""Scoring any segmenter with the CTS evaluation protocol (ALGORITHM section 4).

`evaluate_segmenter` runs a callable `segmenter(image, seeds) -> {output name: (B,1,H,W) {0,1} mask}`
over a dataset and scores each output with `SegmentationScores`, exactly as `ctslib.evaluate.evaluate`
does for CTS (same loader, same per-item seeds, same per-slice and per-volume summaries), so the
baselines and CTS are scored by one protocol. The factories below adapt each model.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ..device import autocast, use_channels_last
from ..evaluate import EvalOptions
from ..metrics import SegmentationScores
from ..sampling import segment

Segmenter = Callable[[torch.Tensor, list[int]], dict[str, torch.Tensor]]


@torch.no_grad()
def evaluate_segmenter(segmenter: Segmenter, dataset: Dataset, opts: EvalOptions = EvalOptions(),
                       device: torch.device | str = "cpu") -> dict:
    """{output: SegmentationScores.summary()} for every output the segmenter returns."""
    device = torch.device(device)
    if opts.limit is not None and opts.limit < len(dataset):
        dataset = Subset(dataset, range(opts.limit))
    loader = DataLoader(dataset, batch_size=opts.batch_size, shuffle=False, num_workers=0)
    scores: dict[str, SegmentationScores] = {}
    offset = 0
    for image, mask, meta in tqdm(loader, desc="evaluate", disable=not opts.progress, leave=False):
        image = image.to(device)
        if use_channels_last(device):
            image = image.contiguous(memory_format=torch.channels_last)
        seeds = [opts.seed * 1_000_003 + offset + i for i in range(image.shape[0])]
        offset += image.shape[0]
        gt = mask.numpy() > 0.5
        cases, slices = list(meta["case"]), [int(s) for s in meta["slice"]]
        with autocast(device):
            preds = segmenter(image, seeds)
        for name, pred in preds.items():
            if name not in scores:
                scores[name] = SegmentationScores(n_bootstrap=opts.n_bootstrap, seed=opts.seed)
            scores[name].add(pred.float().cpu().numpy() > 0.5, gt, cases, slices)
    return {name: s.summary() for name, s in scores.items()}


def cts_segmenter(model, outputs=("one_step", "aux_head"), levels=(0.8,), members: int = 5,
                  mask_encoding: str = "pm1") -> Segmenter:
    """CTS outputs by name, as ctslib.evaluate scores them: one_step, multistep, ensemble, aux_head."""
    model.eval()

    def run(image, seeds):
        preds = {}
        if "one_step" in outputs or "aux_head" in outputs:
            one = segment(model, image, None, 1, seeds, mask_encoding)
            if "one_step" in outputs:
                preds["one_step"] = one.mask
            if "aux_head" in outputs and one.aux_mask is not None:
                preds["aux_head"] = one.aux_mask
        if "multistep" in outputs:
            preds["multistep"] = segment(model, image, levels, 1, seeds, mask_encoding).mask
        if "ensemble" in outputs:
            preds["ensemble"] = segment(model, image, None, members, seeds, mask_encoding).mask
        return preds
    return run


def supervised_segmenter(model) -> Segmenter:
    """The supervised U-Net: {"unet": y_hat > 0.5}."""
    from .supervised import supervised_segment
    model.eval()
    return lambda image, seeds: {"unet": supervised_segment(model, image).mask}


def diffusion_segmenter(model, steps: int | None = None, members: int | None = None, solver: str | None = None,
                        aux_head: bool = True) -> Segmenter:
    """The diffusion baseline: {"ensemble": E-member N-step mask[, "aux_head": y_hat > 0.5]}."""
    from .diffusion import diffusion_segment
    model.eval()

    def run(image, seeds):
        seg = diffusion_segment(model, image, steps, members, seeds, solver)
        preds = {"ensemble": seg.mask}
        if aux_head and seg.aux_mask is not None:
            preds["aux_head"] = seg.aux_mask
        return preds
    return run

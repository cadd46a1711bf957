"""Scoring any segmenter with the CTS evaluation protocol (docs/evaluation.md).

`ctslib.evaluate.evaluate_segmenter` (re-exported here) runs a callable
`segmenter(image, seeds) -> {output name: (B,1,H,W) {0,1} mask}` over a dataset and scores each
output with `SegmentationScores`; `ctslib.evaluate.evaluate` runs CTS through the same loop, so the
baselines and CTS are scored by one protocol. The factories below adapt each baseline model.
"""
from __future__ import annotations

from ..evaluate import Segmenter, cts_segmenter, evaluate_segmenter

__all__ = ["Segmenter", "cts_segmenter", "evaluate_segmenter", "supervised_segmenter", "diffusion_segmenter"]


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

"""Evaluation protocol (docs/evaluation.md): hard Dice / IoU / HD95 per slice and per volume, lesion-wise scores.

Outputs scored separately: the one-step consistency sample, the multistep sample, the E-member
ensemble, and the auxiliary head y_hat. Only the first three measure the consistency model.
By default the masks are scored on the dataset's native grid: predictions go back through
``preprocess.to_native`` (nearest neighbour, crop where padded) and meet the expert mask as stored;
``EvalOptions(grid="model")`` scores at the model's working resolution instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from .data.preprocess import to_native
from .data.spec import DATASETS
from .device import autocast, in_layout, use_channels_last
from .metrics import SegmentationScores
from .model import CTSModel
from .masks import MaskCoding, mask_coding
from .sampling import derive_seed, segment, seeded_noise

OUTPUTS = ("one_step", "multistep", "ensemble", "aux_head")
GRIDS = ("native", "model")


# Dataset kinds whose headline score is per patient (3-D Dice over a patient's slices); the others are per image.
PER_VOLUME_KINDS = tuple(k for k, d in DATASETS.items() if d.per_volume)


def headline_level(kind: str) -> str:
    """The protocol's headline level for a dataset kind: per_volume for LGG and BraTS, per_slice otherwise."""
    return "per_volume" if kind in PER_VOLUME_KINDS else "per_slice"


# The 2-step sampler's second level tau: chosen on the DDTI val split with the anchored recipe
# (benchmarks/level_sweep.py -> benchmarks/results/level_sweep_ddti_val.json; docs/method.md section 9.7).
DEFAULT_LEVELS: tuple[float, ...] = (0.05,)


@dataclass
class EvalOptions:
    outputs: tuple[str, ...] = OUTPUTS
    levels: tuple[float, ...] = DEFAULT_LEVELS   # multistep levels after sigma_max; choose them on the val split
    members: int = 5                       # ensemble size E
    batch_size: int = 16
    limit: int | None = None               # score only the first `limit` items (quick profiles)
    grid: str = "native"                   # native: score on the dataset's own grid (docs/evaluation.md section 5); model: at image_size
    seed: int = 0
    hd95: bool = True
    hd95_convention: str = "medpy"         # or "monai": the larger directed percentile (docs/evaluation.md section 11)
    lesion_wise: bool = True               # per-case lesion-wise scores (docs/evaluation.md section 12)
    n_bootstrap: int = 2000
    progress: bool = True
    extra: dict = field(default_factory=dict)


Segmenter = Callable[[torch.Tensor, list[int]], dict[str, torch.Tensor]]


def _new_scores(opts: EvalOptions) -> SegmentationScores:
    return SegmentationScores(hd95=opts.hd95, hd95_convention=opts.hd95_convention, lesion_wise=opts.lesion_wise,
                              n_bootstrap=opts.n_bootstrap, seed=opts.seed)


def _native_source(dataset: Dataset) -> Dataset | None:
    """The dataset whose ``native_mask(i)`` gives item i's native-grid mask, or None (model grid)."""
    return dataset if getattr(dataset, "has_native_grid", False) else None


def _batches(dataset: Dataset, opts: EvalOptions):
    """(image, mask, meta, item indices) for the first ``opts.limit`` items, in dataset order."""
    if opts.limit is not None and opts.limit < len(dataset):
        dataset = Subset(dataset, range(opts.limit))
    loader = DataLoader(dataset, batch_size=opts.batch_size, shuffle=False, num_workers=0)
    offset = 0
    for image, mask, meta in tqdm(loader, desc="evaluate", disable=not opts.progress, leave=False):
        yield image, mask, meta, range(offset, offset + mask.shape[0])
        offset += mask.shape[0]


def _score_batch(scores: dict[str, SegmentationScores], preds: dict[str, torch.Tensor], gt: torch.Tensor,
                 meta: dict, indices: range, native: Dataset | None) -> None:
    """Add one batch to every output's scores: on the native grid (docs/evaluation.md section 5) when `native` is given."""
    cases, slices = list(meta["case"]), [int(s) for s in meta["slice"]]
    masks = {name: p.float().cpu() > 0.5 for name, p in preds.items()}
    spacing = getattr(native, "volume_spacing", None)   # per-volume HD95 in mm from the files' voxel size
    for case in dict.fromkeys(cases) if spacing is not None else ():
        if any(case not in s.case_spacing for s in scores.values()):
            voxel = spacing(case)
            for s in scores.values():
                s.case_spacing[case] = voxel
    if native is None:
        for name, m in masks.items():
            scores[name].add(m.numpy(), gt.numpy() > 0.5, cases, slices)
        return
    size = gt.shape[-1]
    for b, i in enumerate(indices):
        g = np.asarray(native.native_mask(i), dtype=bool)
        for name, m in masks.items():
            p = to_native(m[b:b + 1].float(), g.shape, size, native.fit, "nearest")[0, 0].numpy() > 0.5
            scores[name].add(p, g, cases[b], slices[b])


@torch.no_grad()
def evaluate_segmenter(segmenter: Segmenter, dataset: Dataset, opts: EvalOptions = EvalOptions(),
                       device: torch.device | str = "cpu") -> dict:
    """{output: SegmentationScores.summary()} for every output ``segmenter(image, seeds)`` returns.

    One loop for CTS and the baselines: same loader order, same per-item seeds, same grid.
    """
    if opts.grid not in GRIDS:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {opts.grid!r}")
    device = torch.device(device)
    native = _native_source(dataset) if opts.grid == "native" else None
    scores: dict[str, SegmentationScores] = {}
    channels_last = use_channels_last(device)
    for image, mask, meta, indices in _batches(dataset, opts):
        image = in_layout(image.to(device), channels_last)
        with autocast(device):
            preds = segmenter(image, [derive_seed(opts.seed, i) for i in indices])
        for name in preds:
            scores.setdefault(name, _new_scores(opts))
        _score_batch(scores, preds, mask, meta, indices, native)
    grid = "native" if native is not None else "model"
    return {name: {**s.summary(), "grid": grid} for name, s in scores.items()}


def resolution_ceiling(dataset: Dataset, opts: EvalOptions = EvalOptions()) -> dict:
    """Scores of the expert masks themselves after the trip to the model grid and back (native grid).

    The best any model working at ``dataset.image_size`` can score: what resizing alone costs.
    """
    native = _native_source(dataset)
    if native is None:
        raise ValueError("resolution_ceiling needs a dataset read from files (native_mask); this one has no native grid")
    scores = {"resized_truth": _new_scores(opts)}
    for _, mask, meta, indices in _batches(dataset, opts):
        _score_batch(scores, {"resized_truth": mask}, mask, meta, indices, native)
    return {name: {**s.summary(), "grid": "native"} for name, s in scores.items()}


def cts_segmenter(model: CTSModel, outputs: Sequence[str] = ("one_step", "aux_head"), levels=DEFAULT_LEVELS,
                  members: int = 5, mask_encoding: str | MaskCoding = "pm1") -> Segmenter:
    """CTS outputs by name: one_step, multistep (at `levels`), ensemble (E=`members`), aux_head."""
    model.eval()
    coding = mask_coding(mask_encoding)

    def run(image, seeds):
        preds = {}
        if "one_step" in outputs or "aux_head" in outputs:
            one = segment(model, image, None, 1, seeds, coding)
            if "one_step" in outputs:
                preds["one_step"] = one.mask
            if "aux_head" in outputs and one.aux_mask is not None:
                preds["aux_head"] = one.aux_mask
        if "multistep" in outputs:
            preds["multistep"] = segment(model, image, levels, 1, seeds, coding).mask
        if "ensemble" in outputs:
            preds["ensemble"] = segment(model, image, None, members, seeds, coding).mask
        return preds
    return run


@torch.no_grad()
def evaluate(model: CTSModel, dataset: Dataset, mask_encoding: str | MaskCoding = "pm1", opts: EvalOptions = EvalOptions(),
             device: torch.device | None = None) -> dict:
    """Score every requested CTS output on `dataset`; returns {output: SegmentationScores.summary()}."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        segmenter = cts_segmenter(model, opts.outputs, opts.levels, opts.members, mask_encoding)
        return evaluate_segmenter(segmenter, dataset, opts, device)
    finally:
        model.train(was_training)


def multistep_sweep(model: CTSModel, dataset: Dataset, levels: Sequence[float], mask_encoding: str | MaskCoding = "pm1",
                    level: str = "per_slice", limit: int | None = None, seed: int = 0,
                    device: torch.device | None = None) -> dict[float, dict[str, float]]:
    """{tau: {"dice", "iou"}} of the 2-step sampler at each second level tau, at `level` (per_slice or
    per_volume), without HD95 or bootstrap: how tau is chosen on a validation split, never on test."""
    out = {}
    for tau in levels:
        opts = EvalOptions(outputs=("multistep",), levels=(float(tau),), limit=limit, seed=seed, hd95=False,
                           n_bootstrap=0, progress=False)
        r = evaluate(model, dataset, mask_encoding, opts, device)["multistep"][level]
        out[float(tau)] = {"dice": r["dice"]["mean"], "iou": r["iou"]["mean"]}
    return out


def headline(results: dict) -> dict[str, float | None]:
    """Mean per-slice Dice of each output: the numbers a training log or a table shows first."""
    return {name: r["per_slice"]["dice"]["mean"] for name, r in results.items()}


def format_table(results: dict, levels: Sequence[float] = ()) -> str:
    """Plain-text tables: output x (per-slice / per-volume Dice, IoU, HD95 as mean ± std), then the lesion-wise
    scores (docs/evaluation.md section 12) where they were computed."""
    def cell(d):
        return "n/a" if d is None or d.get("mean") is None else f"{d['mean']:.4f} ± {d['std']:.4f}"
    rows = [f"{'output':<10} {'level':<10} {'Dice':<18} {'IoU':<18} {'HD95':<20} n"]
    for name, r in results.items():
        for level in ("per_slice", "per_volume"):
            x = r[level]
            rows.append(f"{name:<10} {level:<10} {cell(x['dice']):<18} {cell(x['iou']):<18} {cell(x['hd95']):<20} {x['n']}")
    lesion_rows = [(name, r["lesion_wise"]) for name, r in results.items() if r.get("lesion_wise")]
    if lesion_rows:
        rows.append(f"{'output':<10} {'lesion-wise Dice':<20} {'lesions':>8} {'detected':>9} {'missed':>7} "
                    f"{'false pos':>10} cases")
        rows += [f"{name:<10} {cell(x['dice']):<20} {x['lesions']:>8} {x['detected']:>9} {x['missed']:>7} "
                 f"{x['false_positives']:>10} {x['n']}" for name, x in lesion_rows]
        x = lesion_rows[0][1]
        rows.append(f"lesions: components merged within {x['dilation']} voxels, lesions of {x['min_size']} voxels "
                    "or fewer left out (BraTS 2023 lesion-wise protocol)")
    conventions = sorted({r["hd95_convention"] for r in results.values() if "hd95_convention" in r})
    if conventions:
        rows.append(f"HD95: {' / '.join(conventions)} convention (docs/evaluation.md section 11)")
    grids = sorted({r["grid"] for r in results.values() if "grid" in r})
    if grids:
        rows.append(f"scored on the {' / '.join(grids)} grid" + (" (masks mapped back to the files' own size)"
                                                                  if grids == ["native"] else ""))
    return "\n".join(rows)


@torch.no_grad()
def dice_by_noise_level(model: CTSModel, dataset: Dataset, sigmas: Sequence[float], mask_encoding: str | MaskCoding = "pm1",
                        limit: int | None = None, max_images: int | None = 64, batch_size: int = 32, seed: int = 0,
                        device=None) -> dict[str, list]:
    """Dice of f(x^m + sigma z, sigma) > threshold against m, per noise level (mean over images, model grid).

    A diagnostic of where the consistency chain fails: at sigma_min f is the identity (Dice 1); one-step
    sampling uses only the right end, sigma_max, where the input carries no mask information at all.
    Images with an empty expert mask are left out (their Dice says nothing about the chain); at most
    `max_images` of the others are scored, the first ones in dataset order.
    """
    from .metrics import dice
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    coding = mask_coding(mask_encoding)
    opts = EvalOptions(batch_size=batch_size, limit=limit, progress=False)
    per_sigma: dict[float, list[float]] = {float(s): [] for s in sigmas}
    scored = 0
    for image, mask, _, indices in _batches(dataset, opts):
        keep = mask.flatten(1).amax(1) > 0.5
        if max_images is not None:
            keep &= torch.cumsum(keep.long(), 0) <= max_images - scored
        if not keep.any():
            continue
        image, mask = image[keep].to(device), mask[keep]
        ids = [i for i, k in zip(indices, keep.tolist()) if k]
        scored += len(ids)
        truth = mask.numpy() > 0.5
        encoded = model.encode(image)
        x_clean = coding.encode(mask.to(device))
        for s in per_sigma:
            z = seeded_noise(tuple(x_clean.shape), [derive_seed(seed, i) for i in ids], device)
            sigma = torch.full((len(ids),), s, device=device, dtype=torch.float64)
            pred = (model(x_clean + s * z, sigma, image, encoded=encoded).denoised > coding.threshold).cpu().numpy()
            per_sigma[s] += [dice(p, g) for p, g in zip(pred, truth)]
    return {"sigma": list(per_sigma), "dice": [float(np.mean(v)) if v else float("nan") for v in per_sigma.values()],
            "n_images": scored}


def level_sweep(model: CTSModel, dataset: Dataset, levels: Sequence[float] = (0.5, 0.8, 2.0, 5.0), limit: int | None = None,
                device: str = "auto", mask_encoding: str | MaskCoding = "pm1") -> list[dict]:
    """Validation Dice of two-step sampling for each intermediate level tau (choose tau on val, never on test)."""
    from .device import pick_device
    sweep = multistep_sweep(model, dataset, levels, mask_encoding, limit=limit, device=pick_device(device))
    return [{"tau": tau, "val_dice": r["dice"], "val_iou": r["iou"]} for tau, r in sweep.items()]


def resolution_ceilings(specs: dict[str, str], sizes: Sequence[int] = (32, 64, 128, 256), split: str = "train",
                        limit: int | None = None) -> list[dict]:
    """Per dataset and working size: Dice of the expert masks resized to that size and mapped back to
    the files' grid (`evaluate.resolution_ceiling`), i.e. the best any model at that size can score.
    Datasets without files behind them (the phantoms) have no native grid and are left out."""
    from .data import open_dataset
    opts = EvalOptions(hd95=False, n_bootstrap=0, progress=False)
    rows = []
    for name, spec in specs.items():
        for size in sizes:
            ds = open_dataset(spec, split, size, limit=limit)
            if not ds.has_native_grid:
                break
            r = resolution_ceiling(ds, opts)["resized_truth"]["per_slice"]
            rows.append({"dataset": name, "size": size, "dice_all": r["dice"]["mean"],
                         "dice_tumour": r["dice_tumour"]["mean"], "n_tumour": r["n_tumour"], "n": r["n"]})
    return rows

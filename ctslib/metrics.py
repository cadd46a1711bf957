"""Segmentation metrics for CTS (docs/evaluation.md).

Hard metrics are computed on binary masks at a fixed threshold:

* Dice  = 2|P∩G| / (|P|+|G|),  IoU = |P∩G| / |P∪G|  (so per case IoU = D/(2-D)).
  Both masks empty -> 1.0; exactly one empty -> 0.0.
* HD95  = 95th percentile of the *pooled* directed surface distances in both
  directions (MedPy convention; ``convention="monai"``: the larger of the two
  directed 95th percentiles), surfaces = mask minus its binary erosion,
  distances from a Euclidean distance transform with ``sampling=spacing``.
  Units: pixels for 2-D slices (spacing=None), mm for volumes (pass spacing).
  Both empty -> 0.0; exactly one empty -> undefined (``nan``), or the image
  diagonal with ``fallback="diagonal"``.

:class:`SegmentationScores` accumulates per-slice records incrementally and
produces per-slice and per-volume summaries (mean ± std, seeded percentile
bootstrap 95% CI over cases, lesion-wise scores per case from ``ctslib.lesions``)
as a JSON-serialisable, NaN-free dict. The soft batch-pooled Dice of the
authors' released code lives apart, in ``ctslib.legacy_metrics`` (parity only).

Inputs may be numpy arrays or torch tensors (2-D or 3-D); torch is never
imported here, tensors are converted by duck typing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import numpy as np
from scipy import ndimage

from .lesions import lesion_scores
from .statistics import bootstrap_ci, mean_std

__all__ = [
    "as_mask", "dice", "iou", "dice_iou", "iou_from_dice", "surface", "surface_distances", "hd95",
    "HD95_CONVENTIONS", "image_diagonal", "SLICE_256_DIAGONAL_PX", "BRATS_VOLUME_DIAGONAL_MM", "mean_std",
    "bootstrap_ci", "SegmentationScores",
]

Spacing = float | Sequence[float] | None


# --------------------------------------------------------------------------- #
# conversion helpers
# --------------------------------------------------------------------------- #
def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy array or (duck-typed) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def as_mask(x: Any, threshold: float = 0.5) -> np.ndarray:
    """Binary mask (docs/evaluation.md): bool kept as is, else ``x > threshold``.

    Works for {0,1} integer/float masks, label maps with positive foreground
    and probability maps (fixed threshold, default 0.5).
    """
    a = _to_numpy(x)
    if a.dtype == np.bool_:
        return a
    return a > threshold


def _pair(pred: Any, gt: Any, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_mask(pred, threshold), as_mask(gt, threshold)
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} != gt shape {g.shape}")
    return p, g


def _spacing(spacing: Spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if np.ndim(spacing) == 0:
        return (float(spacing),) * ndim  # type: ignore[arg-type]
    sp = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(sp) != ndim:
        raise ValueError(f"spacing {sp} does not match {ndim}-D mask")
    return sp


# --------------------------------------------------------------------------- #
# overlap metrics
# --------------------------------------------------------------------------- #
def dice_iou(pred: Any, gt: Any, threshold: float = 0.5) -> tuple[float, float]:
    """(Dice, IoU) of two binary masks (docs/evaluation.md).

    Both empty -> (1.0, 1.0); exactly one empty -> (0.0, 0.0).
    """
    p, g = _pair(pred, gt, threshold)
    inter = int(np.count_nonzero(p & g))
    sp, sg = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    if sp + sg == 0:
        return 1.0, 1.0
    union = sp + sg - inter
    return 2.0 * inter / (sp + sg), inter / union


def dice(pred: Any, gt: Any, threshold: float = 0.5) -> float:
    """Dice = 2|P∩G|/(|P|+|G|); both empty -> 1 (docs/evaluation.md)."""
    return dice_iou(pred, gt, threshold)[0]


def iou(pred: Any, gt: Any, threshold: float = 0.5) -> float:
    """IoU = |P∩G|/|P∪G|; both empty -> 1 (docs/evaluation.md)."""
    return dice_iou(pred, gt, threshold)[1]


def iou_from_dice(d: float) -> float:
    """Per-case identity IoU = D/(2-D) (docs/evaluation.md)."""
    return d / (2.0 - d)


# --------------------------------------------------------------------------- #
# surface distances / HD95
# --------------------------------------------------------------------------- #
def surface(mask: Any, threshold: float = 0.5) -> np.ndarray:
    """Boundary pixels/voxels: mask minus its binary erosion (docs/evaluation.md).

    Face connectivity (``generate_binary_structure(ndim, 1)``), outside of the
    image counts as background (MedPy convention).
    """
    m = as_mask(mask, threshold)
    if not m.any():
        return np.zeros_like(m)
    st = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=st, border_value=0)


def _crop_box(m: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``m`` padded by one pixel (clipped to the image).

    Cropping to it leaves surfaces and Euclidean distances unchanged: the pad
    keeps a background layer where the original had one, and at the image edge
    the crop edge is the image edge.
    """
    idx = np.nonzero(m)
    return tuple(
        slice(max(int(i.min()) - 1, 0), min(int(i.max()) + 2, n))
        for i, n in zip(idx, m.shape)
    )


def surface_distances(
    pred: Any, gt: Any, spacing: Spacing = None, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (d_pg, d_gp) (docs/evaluation.md).

    ``d_pg[i]`` = distance from the i-th surface point of P to the surface of G,
    via ``distance_transform_edt(~surface(G), sampling=spacing)``. Both masks
    must be non-empty.
    """
    p, g = _pair(pred, gt, threshold)
    if not p.any() or not g.any():
        raise ValueError("surface distances need two non-empty masks")
    sp = _spacing(spacing, p.ndim)
    box = _crop_box(p | g)
    p, g = p[box], g[box]
    sp_p, sp_g = surface(p), surface(g)
    d_pg = ndimage.distance_transform_edt(~sp_g, sampling=sp)[sp_p]
    d_gp = ndimage.distance_transform_edt(~sp_p, sampling=sp)[sp_g]
    return d_pg, d_gp


def image_diagonal(shape: Sequence[int], spacing: Spacing = None) -> float:
    """Image diagonal sqrt(sum((shape*spacing)^2)), the HD95 fallback (docs/evaluation.md section 6).

    362.04 px for a 256x256 slice, 373.13 mm for 240x240x155 at 1 mm.
    """
    sp = _spacing(spacing, len(shape))
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, sp))))


SLICE_256_DIAGONAL_PX: float = image_diagonal((256, 256))
BRATS_VOLUME_DIAGONAL_MM: float = image_diagonal((240, 240, 155), 1.0)
HD95_CONVENTIONS = ("medpy", "monai")


def _check_convention(convention: str) -> None:
    if convention not in HD95_CONVENTIONS:
        raise ValueError(f"HD95 convention must be one of {', '.join(HD95_CONVENTIONS)}, got {convention!r}")


def hd95(
    pred: Any,
    gt: Any,
    spacing: Spacing = None,
    fallback: str = "nan",
    threshold: float = 0.5,
    convention: str = "medpy",
) -> float:
    """95th-percentile Hausdorff distance (docs/evaluation.md sections 6 and 11).

    ``convention="medpy"`` (default): ``np.percentile(np.hstack((d_pg, d_gp)), 95)``
    over the pooled directed surface distances (MedPy's ``hd95``).
    ``convention="monai"``: ``max(percentile(d_pg, 95), percentile(d_gp, 95))``
    (MONAI's ``compute_hausdorff_distance(percentile=95)``, DeepMind's
    ``compute_robust_hausdorff`` up to its surfel weighting). Units of ``spacing``
    (pixels if None). Both empty -> 0.0. Exactly one empty -> ``nan``
    (``fallback="nan"``) or the image diagonal (``fallback="diagonal"``).
    """
    if fallback not in ("nan", "diagonal"):
        raise ValueError(f"fallback must be 'nan' or 'diagonal', got {fallback!r}")
    _check_convention(convention)
    p, g = _pair(pred, gt, threshold)
    pe, ge = not p.any(), not g.any()
    if pe and ge:
        return 0.0
    if pe or ge:
        return image_diagonal(p.shape, spacing) if fallback == "diagonal" else float("nan")
    d_pg, d_gp = surface_distances(p, g, spacing)
    if convention == "monai":
        return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))
    return float(np.percentile(np.hstack((d_pg, d_gp)), 95))


# --------------------------------------------------------------------------- #
# aggregation
# --------------------------------------------------------------------------- #
def _as_list(x: Any, n: int, name: str) -> list:
    if hasattr(x, "detach"):
        x = _to_numpy(x)
    if isinstance(x, (str, bytes)) or np.ndim(x) == 0:
        return [x.item() if isinstance(x, np.generic) else x] * n
    out = [v.item() if isinstance(v, np.generic) else v for v in list(x)]
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} entries, batch has {n}")
    return out


def _batch(x: Any, threshold: float) -> np.ndarray:
    """(B,H,W) bool from (H,W), (B,H,W) or (B,1,H,W)."""
    m = as_mask(x, threshold)
    if m.ndim == 2:
        m = m[None]
    elif m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"expected (H,W), (B,H,W) or (B,1,H,W) masks, got {m.shape}")
    return m


def _sorted_cases(cases: Iterable[Hashable]) -> list:
    """Case ids sorted naturally, or by ``repr`` when types are not comparable."""
    cs = list(cases)
    try:
        return sorted(cs)
    except TypeError:
        return sorted(cs, key=repr)


def _jsonable(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


@dataclass
class SegmentationScores:
    """Incremental per-slice / per-volume evaluator (docs/evaluation.md sections 4, 7 and 12).

    Feed batches with :meth:`add`; only the binary masks (bool) and per-slice
    scores are kept. :meth:`summary` returns a JSON-serialisable, NaN-free dict.

    Args:
        slice_spacing: spacing for per-slice HD95 (None -> pixels).
        volume_spacing: spacing of stacked (slice, H, W) volumes for per-volume
            HD95 (scalar or 3-tuple in that axis order; default 1 -> mm at 1 mm).
        case_spacing: per-case volume spacing that overrides volume_spacing
            (e.g. each NIfTI header's voxel size).
        hd95_fallback: "nan" (undefined HD95 excluded from mean/std and counted)
            or "diagonal" (replaced by the image diagonal, still counted).
        hd95: False skips the distance transforms (HD95 then reads None; Dice/IoU only).
        hd95_convention: "medpy" (pooled, default) or "monai" (larger directed percentile).
        lesion_wise: per-case lesion-wise scores (``ctslib.lesions``, BraTS 2023 protocol)
            with ``lesion_dilation`` steps and lesions of ``lesion_min_size`` voxels or fewer left out.
        n_bootstrap, seed, ci_level: percentile bootstrap over cases.
        threshold: binarisation threshold for non-bool inputs.
    """

    slice_spacing: Spacing = None
    volume_spacing: Spacing = 1.0
    case_spacing: dict = field(default_factory=dict)
    hd95_fallback: str = "nan"
    hd95: bool = True
    hd95_convention: str = "medpy"
    lesion_wise: bool = True
    lesion_dilation: int = 3
    lesion_min_size: int = 50
    n_bootstrap: int = 2000
    seed: int = 0
    ci_level: float = 0.95
    threshold: float = 0.5
    _slices: list[dict] = field(default_factory=list, init=False, repr=False)
    _masks: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.hd95_fallback not in ("nan", "diagonal"):
            raise ValueError("hd95_fallback must be 'nan' or 'diagonal'")
        _check_convention(self.hd95_convention)

    def _hd95(self, p: np.ndarray, g: np.ndarray, spacing: Spacing) -> tuple[float, bool]:
        """(HD95 under this policy, whether it is undefined); nan when HD95 is switched off."""
        if not self.hd95:
            return float("nan"), False
        h = hd95(p, g, spacing, fallback="nan", convention=self.hd95_convention)
        undefined = math.isnan(h)
        return (image_diagonal(p.shape, spacing) if undefined and self.hd95_fallback == "diagonal" else h), undefined

    def __len__(self) -> int:
        return len(self._slices)

    def add(self, pred: Any, gt: Any, cases: Any, slices: Any) -> None:
        """Add a batch of slices: masks (H,W)/(B,H,W)/(B,1,H,W), case ids, slice indices.

        ``cases``/``slices`` are sequences of length B (a scalar is broadcast).
        A (case, slice) pair may be added only once.
        """
        p, g = _batch(pred, self.threshold), _batch(gt, self.threshold)
        if p.shape != g.shape:
            raise ValueError(f"pred shape {p.shape} != gt shape {g.shape}")
        n = p.shape[0]
        cs, ss = _as_list(cases, n, "cases"), _as_list(slices, n, "slices")
        for i in range(n):
            case, sl = cs[i], int(ss[i])
            vol = self._masks.setdefault(case, {})
            if sl in vol:
                raise ValueError(f"duplicate slice {sl} for case {case!r}")
            pi, gi = np.ascontiguousarray(p[i]), np.ascontiguousarray(g[i])
            vol[sl] = (pi, gi)
            d, j = dice_iou(pi, gi)
            h, undefined = self._hd95(pi, gi, self.slice_spacing)
            self._slices.append({"case": case, "slice": sl, "dice": d, "iou": j, "hd95": h, "tumour": bool(gi.any()),
                                 "pred_nonempty": bool(pi.any()), "hd95_undefined": undefined})

    def per_case(self) -> list[dict]:
        """Per-volume scores: slices stacked in slice-index order, 3-D metrics (a one-slice case: 2-D ones).

        Returns dicts {"case", "n_slices", "dice", "iou", "hd95",
        "hd95_undefined", "lesions"} sorted by case id (so summaries do not depend
        on the order batches were fed); hd95 is None when undefined under the
        "nan" policy; "lesions" holds the case's `LesionScores` as a dict (None
        when lesion_wise is off).
        """
        out = []
        for case in _sorted_cases(self._masks):
            vol = self._masks[case]
            order = sorted(vol)
            p = np.stack([vol[k][0] for k in order])
            g = np.stack([vol[k][1] for k in order])
            d, j = dice_iou(p, g)
            spacing = self.case_spacing.get(case, self.volume_spacing)
            if len(order) == 1:     # a one-slice case is an image: 2-D surfaces (a 3-D erosion would take it all)
                p, g = p[0], g[0]
                spacing = spacing if spacing is None or np.ndim(spacing) == 0 else tuple(spacing)[1:]
            h, undefined = self._hd95(p, g, spacing)
            lesions = lesion_scores(p, g, self.lesion_dilation, self.lesion_min_size) if self.lesion_wise else None
            out.append({"case": case, "n_slices": len(order), "dice": float(d), "iou": float(j), "hd95": _jsonable(h),
                        "hd95_undefined": undefined, "lesions": lesions.as_dict() if lesions else None})
        return out

    def _with_ci(self, values: list[float]) -> dict:
        out: dict = mean_std(values)
        out["ci95"] = bootstrap_ci(values, self.n_bootstrap, self.seed, self.ci_level)
        return out

    def _lesion_summary(self, cases: list[dict]) -> dict | None:
        """Lesion-wise Dice over cases (mean, std, CI) and the counts summed over cases."""
        scored = [c["lesions"] for c in cases if c["lesions"] is not None]
        if not self.lesion_wise:
            return None
        counts = ("lesions", "detected", "missed", "false_positives", "small_lesions")
        return {"dice": self._with_ci([s["dice"] for s in scored]), **{k: sum(s[k] for s in scored) for k in counts},
                "n": len(scored), "dilation": self.lesion_dilation, "min_size": self.lesion_min_size}

    def summary(self) -> dict:
        """JSON-serialisable summary (plain floats/ints, None where undefined)."""
        rows = self._slices
        tum = [r for r in rows if r["tumour"]]

        def ms(rs: list[dict], key: str) -> dict:
            return mean_std(r[key] for r in rs)

        per_slice = {
            "dice": ms(rows, "dice"),
            "iou": ms(rows, "iou"),
            "hd95": ms(rows, "hd95"),
            "n": len(rows),
            "n_tumour": len(tum),
            "dice_tumour": ms(tum, "dice"),
            "iou_tumour": ms(tum, "iou"),
            "hd95_tumour": ms(tum, "hd95"),
            "false_positive_empty": sum(1 for r in rows if not r["tumour"] and r["pred_nonempty"]),
            "hd95_undefined": sum(1 for r in rows if r["hd95_undefined"]),
        }
        cases = self.per_case()
        per_volume = {
            "dice": self._with_ci([c["dice"] for c in cases]),
            "iou": self._with_ci([c["iou"] for c in cases]),
            "hd95": self._with_ci([c["hd95"] for c in cases if c["hd95"] is not None]),
            "n": len(cases),
            "hd95_undefined": sum(1 for c in cases if c["hd95_undefined"]),
        }
        return {
            "per_slice": per_slice,
            "per_volume": per_volume,
            "lesion_wise": self._lesion_summary(cases),
            "hd95_fallback": self.hd95_fallback,
            "hd95_convention": self.hd95_convention,
        }

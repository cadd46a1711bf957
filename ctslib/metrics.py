"""Segmentation metrics for CTS (docs/evaluation.md).

Hard metrics are computed on binary masks at a fixed threshold:

* Dice  = 2|P∩G| / (|P|+|G|),  IoU = |P∩G| / |P∪G|  (so per case IoU = D/(2-D)).
  Both masks empty -> 1.0; exactly one empty -> 0.0.
* HD95  = 95th percentile of the *pooled* directed surface distances in both
  directions (MedPy convention), surfaces = mask minus its binary erosion,
  distances from a Euclidean distance transform with ``sampling=spacing``.
  Units: pixels for 2-D slices (spacing=None), mm for volumes (pass spacing).
  Both empty -> 0.0; exactly one empty -> undefined (``nan``), or the image
  diagonal with ``fallback="diagonal"``.

:class:`SegmentationScores` accumulates per-slice records incrementally and
produces per-slice and per-volume summaries (mean ± std, seeded percentile
bootstrap 95% CI over cases) as a JSON-serialisable, NaN-free dict.

The ``legacy_*`` functions reproduce the soft, batch-pooled Dice/IoU of the
authors' released code for parity checks only; they are NOT comparable to the
per-slice or per-volume Dice above.

Inputs may be numpy arrays or torch tensors (2-D or 3-D); torch is never
imported here, tensors are converted by duck typing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "as_mask",
    "dice",
    "iou",
    "dice_iou",
    "iou_from_dice",
    "surface",
    "surface_distances",
    "hd95",
    "image_diagonal",
    "SLICE_256_DIAGONAL_PX",
    "BRATS_VOLUME_DIAGONAL_MM",
    "mean_std",
    "bootstrap_ci",
    "SegmentationScores",
    "legacy_soft_dice",
    "legacy_soft_iou",
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


def hd95(
    pred: Any,
    gt: Any,
    spacing: Spacing = None,
    fallback: str = "nan",
    threshold: float = 0.5,
) -> float:
    """95th-percentile Hausdorff distance, MedPy convention (docs/evaluation.md).

    ``np.percentile(np.hstack((d_pg, d_gp)), 95)`` over pooled directed surface
    distances; units of ``spacing`` (pixels if None). Both empty -> 0.0.
    Exactly one empty -> ``nan`` (``fallback="nan"``) or the image diagonal
    (``fallback="diagonal"``, see :func:`image_diagonal`).
    """
    if fallback not in ("nan", "diagonal"):
        raise ValueError(f"fallback must be 'nan' or 'diagonal', got {fallback!r}")
    p, g = _pair(pred, gt, threshold)
    pe, ge = not p.any(), not g.any()
    if pe and ge:
        return 0.0
    if pe or ge:
        return image_diagonal(p.shape, spacing) if fallback == "diagonal" else float("nan")
    d_pg, d_gp = surface_distances(p, g, spacing)
    return float(np.percentile(np.hstack((d_pg, d_gp)), 95))


# --------------------------------------------------------------------------- #
# statistics
# --------------------------------------------------------------------------- #
def _finite(values: Iterable[float]) -> np.ndarray:
    v = np.asarray(list(values), dtype=np.float64)
    return v[np.isfinite(v)]


def mean_std(values: Iterable[float]) -> dict[str, float | None]:
    """{"mean", "std"} over finite values (population std, ddof=0); None if none."""
    v = _finite(values)
    if v.size == 0:
        return {"mean": None, "std": None}
    return {"mean": float(v.mean()), "std": float(v.std())}


def bootstrap_ci(
    values: Iterable[float],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """Seeded percentile-bootstrap CI of the mean (docs/evaluation.md section 7).

    Resamples the finite values with replacement ``n_resamples`` times using
    ``np.random.default_rng(seed)``; returns [lo, hi], or None if there are no
    values or ``n_resamples <= 0`` (bootstrap switched off, e.g. for quick validation).
    """
    v = _finite(values)
    if v.size == 0 or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    means = v[idx].mean(axis=1)
    a = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [a, 100.0 - a])
    return [float(lo), float(hi)]


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
    """Incremental per-slice / per-volume evaluator (docs/evaluation.md sections 4 and 7).

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
        n_bootstrap, seed, ci_level: percentile bootstrap over cases.
        threshold: binarisation threshold for non-bool inputs.
    """

    slice_spacing: Spacing = None
    volume_spacing: Spacing = 1.0
    case_spacing: dict = field(default_factory=dict)
    hd95_fallback: str = "nan"
    hd95: bool = True
    n_bootstrap: int = 2000
    seed: int = 0
    ci_level: float = 0.95
    threshold: float = 0.5
    _slices: list[dict] = field(default_factory=list, init=False, repr=False)
    _masks: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.hd95_fallback not in ("nan", "diagonal"):
            raise ValueError("hd95_fallback must be 'nan' or 'diagonal'")

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
            h = hd95(pi, gi, self.slice_spacing, fallback="nan") if self.hd95 else float("nan")
            undefined = self.hd95 and math.isnan(h)
            if undefined and self.hd95_fallback == "diagonal":
                h = image_diagonal(pi.shape, self.slice_spacing)
            self._slices.append(
                {
                    "case": case,
                    "slice": sl,
                    "dice": d,
                    "iou": j,
                    "hd95": h,
                    "tumour": bool(gi.any()),
                    "pred_nonempty": bool(pi.any()),
                    "hd95_undefined": undefined,
                }
            )

    def per_case(self) -> list[dict]:
        """Per-volume scores: slices stacked in slice-index order, 3-D metrics (a one-slice case: 2-D ones).

        Returns dicts {"case", "n_slices", "dice", "iou", "hd95",
        "hd95_undefined"} sorted by case id (so summaries do not depend on the
        order batches were fed); hd95 is None when undefined under the "nan"
        policy.
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
            h = hd95(p, g, spacing, fallback="nan") if self.hd95 else float("nan")
            undefined = self.hd95 and math.isnan(h)
            if undefined and self.hd95_fallback == "diagonal":
                h = image_diagonal(p.shape, spacing)
            out.append(
                {
                    "case": case,
                    "n_slices": len(order),
                    "dice": float(d),
                    "iou": float(j),
                    "hd95": _jsonable(h),
                    "hd95_undefined": undefined,
                }
            )
        return out

    def _with_ci(self, values: list[float]) -> dict:
        out: dict = mean_std(values)
        out["ci95"] = bootstrap_ci(values, self.n_bootstrap, self.seed, self.ci_level)
        return out

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
            "false_positive_empty": sum(
                1 for r in rows if not r["tumour"] and r["pred_nonempty"]
            ),
            "hd95_undefined": sum(1 for r in rows if r["hd95_undefined"]),
        }
        cases = self.per_case()
        per_volume = {
            "dice": self._with_ci([c["dice"] for c in cases]),
            "iou": self._with_ci([c["iou"] for c in cases]),
            "hd95": self._with_ci(
                [c["hd95"] for c in cases if c["hd95"] is not None]
            ),
            "n": len(cases),
            "hd95_undefined": sum(1 for c in cases if c["hd95_undefined"]),
        }
        return {
            "per_slice": per_slice,
            "per_volume": per_volume,
            "hd95_fallback": self.hd95_fallback,
        }


# --------------------------------------------------------------------------- #
# legacy (parity only)
# --------------------------------------------------------------------------- #
def _legacy_sums(prob: Any, target: Any) -> tuple[float, float, float]:
    p = _to_numpy(prob).astype(np.float64)
    g = _to_numpy(target).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"prob shape {p.shape} != target shape {g.shape}")
    return float((p * g).sum()), float(p.sum()), float(g.sum())


def legacy_soft_dice(prob: Any, target: Any, eps: float = 1e-6) -> float:
    """LEGACY soft batch-pooled Dice, as in the authors' released code (parity only).

    ``(2*sum(p*g) + eps) / (sum(p) + sum(g) + eps)`` with soft probabilities,
    summed over the WHOLE batch (all slices pooled). Large-tumour slices dominate
    and empty slices vanish, so this is NOT comparable to per-slice or
    per-volume Dice (docs/evaluation.md).
    """
    inter, sp, sg = _legacy_sums(prob, target)
    return (2.0 * inter + eps) / (sp + sg + eps)


def legacy_soft_iou(prob: Any, target: Any, eps: float = 1e-6) -> float:
    """LEGACY soft batch-pooled IoU, as in the authors' released code (parity only).

    ``(sum(p*g) + eps) / (sum(p) + sum(g) - sum(p*g) + eps)`` pooled over the
    whole batch. NOT comparable to per-slice or per-volume IoU
    (docs/evaluation.md).
    """
    inter, sp, sg = _legacy_sums(prob, target)
    return (inter + eps) / (sp + sg - inter + eps)

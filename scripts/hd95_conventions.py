"""HD95 and empty-mask Dice across libraries: the numbers of docs/evaluation.md section 11.

    python scripts/hd95_conventions.py            # the libraries that are installed (dev extra: MedPy, MONAI)

Example 1 (HD95): G is a 24x24 square in a 64x64 image; P is that square moved down one row plus a 3x3 blob
far from it. The blob is 8 of P's 100 surface pixels: more than 5% of the P->G distances but under 5% of the
192 pooled ones, so the pooled percentile (MedPy, ctslib's default) does not see it and the larger directed
percentile (MONAI, DeepMind's surface-distance) does.
Example 2 (Dice): three slices, one with both masks empty and two with a tumour scored 0.8 and 0.6.
A reference library that is not installed is reported as such, never replaced.
"""
from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.metrics import SegmentationScores, dice, hd95  # noqa: E402


def square_and_far_blob() -> tuple[np.ndarray, np.ndarray]:
    """(P, G) of example 1."""
    g = np.zeros((64, 64), bool)
    g[8:32, 8:32] = True
    p = np.roll(g, 1, axis=0)
    p[52:55, 52:55] = True
    return p, g


def three_slices() -> list[tuple[np.ndarray, np.ndarray]]:
    """(P, G) pairs of example 2: empty/empty, then Dice 0.8 (|P|=|G|=25, 20 shared), then Dice 0.6."""
    z = np.zeros((16, 16), bool)
    g1, p1 = z.copy(), z.copy()
    g1[0:5, 0:5] = True
    p1[1:6, 0:5] = True                              # 20 of 25 shared: 2*20/50 = 0.8
    g2, p2 = z.copy(), z.copy()
    g2[0:5, 0:4] = True
    p2[2:7, 0:4] = True                              # 12 of 20 shared: 2*12/40 = 0.6
    return [(z, z), (p1, g1), (p2, g2)]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def hd95_rows(p: np.ndarray, g: np.ndarray) -> list[tuple[str, str, float | None]]:
    rows = [("ctslib hd95(convention='medpy') (default)", "pooled", hd95(p, g)),
            ("ctslib hd95(convention='monai')", "larger directed", hd95(p, g, convention="monai"))]
    if installed("medpy"):
        from medpy.metric.binary import hd95 as medpy_hd95
        rows.append(("medpy.metric.binary.hd95", "pooled", float(medpy_hd95(p, g))))
    else:
        rows.append(("medpy.metric.binary.hd95", "pooled", None))
    if installed("monai"):
        import torch
        from monai.metrics import compute_hausdorff_distance
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            t = [torch.from_numpy(m)[None, None].float() for m in (p, g)]
            rows.append(("monai.metrics.compute_hausdorff_distance(percentile=95)", "larger directed",
                         float(compute_hausdorff_distance(*t, percentile=95).item())))
    else:
        rows.append(("monai.metrics.compute_hausdorff_distance(percentile=95)", "larger directed", None))
    if installed("surface_distance"):
        import surface_distance as sd
        rows.append(("surface_distance.compute_robust_hausdorff(., 95) (DeepMind)", "larger directed, surfel-weighted",
                     float(sd.compute_robust_hausdorff(sd.compute_surface_distances(g, p, (1.0, 1.0)), 95))))
    else:
        rows.append(("surface_distance.compute_robust_hausdorff(., 95) (DeepMind)", "larger directed, surfel-weighted",
                     None))
    return rows


def dice_rows(pairs) -> list[tuple[str, str]]:
    acc = SegmentationScores(hd95=False, lesion_wise=False, n_bootstrap=0)
    for k, (p, g) in enumerate(pairs):
        acc.add(p, g, "case", k)
    s = acc.summary()["per_slice"]
    rows = [("ctslib dice, both empty", f"{dice(*pairs[0]):.4f}"),
            ("ctslib per_slice dice mean (empty slice counts 1)", f"{s['dice']['mean']:.4f}"),
            ("ctslib per_slice dice_tumour mean (slices with tumour)", f"{s['dice_tumour']['mean']:.4f}")]
    if installed("monai"):
        import torch
        from monai.metrics import DiceMetric
        batch = [torch.from_numpy(np.stack([m[None] for m in ms])).float() for ms in zip(*pairs)]
        for ignore_empty in (True, False):
            metric = DiceMetric(include_background=True, reduction="mean", ignore_empty=ignore_empty)
            per_slice = metric(*batch).flatten().tolist()
            label = "default" if ignore_empty else "ignore_empty=False"
            rows.append((f"MONAI DiceMetric ({label}), both empty", f"{per_slice[0]:.4f}"))
            rows.append((f"MONAI DiceMetric ({label}), aggregate() mean", f"{metric.aggregate().item():.4f}"))
    else:
        rows.append(("MONAI DiceMetric", "not installed"))
    return rows


def main() -> int:
    p, g = square_and_far_blob()
    print("Example 1: HD95 of a 24x24 square moved one row, plus a far 3x3 blob (pixels)\n")
    print("| implementation | 95th percentile of | HD95 |\n|---|---|---|")
    for name, kind, value in hd95_rows(p, g):
        print(f"| `{name}` | {kind} | {'not installed' if value is None else f'{value:.2f}'} |")
    print("\nExample 2: Dice over three slices, one with both masks empty, two with tumour (0.8, 0.6)\n")
    print("| convention | value |\n|---|---|")
    for name, value in dice_rows(three_slices()):
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The paper's claims beside this run's findings (notebooks 04 and 05): per-case scores, paired
bootstrap intervals, and a verdict each notebook computes from its own numbers.

Only numbers printed in the paper are quoted here (its Table 1, and Table 2's ranking and best brain
Dice); the claims of Fig. 3 and Fig. 4 are compared in words, with no number attributed to the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .metrics import bootstrap_ci
from .run_folder import evaluation_points

# Zhang et al., "CTS: A Consistency-Based Medical Image Segmentation Model", Table 1 (brain tumour, %).
TABLE1_BRAIN = {"CTS-M": {"dice": 91.7, "iou": 83.9}, "CTS-FM": {"dice": 92.1, "iou": 84.0}}
TABLE2_BEST_BRAIN_DICE = 86.9          # Table 2's best brain Dice (its "500,000 samples" row), %


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, the numbers it prints for it, and the sign of the difference it predicts."""
    source: str
    claim: str
    paper_numbers: str


TABLE2_CLAIMS = {
    "signals": Claim("Table 2", "multi-scale signals help: CTS-M above CTS-nM",
                     "ranked so in Table 2 (its per-row numbers are not quoted here)"),
    "ffparser": Claim("Tables 1-2", "the FF-Parser helps: CTS-FM above CTS-M",
                      f"Table 1 brain Dice {TABLE1_BRAIN['CTS-FM']['dice']} vs {TABLE1_BRAIN['CTS-M']['dice']} (+0.4)"),
}
FIG3_CLAIM = Claim("Fig. 3", "test Dice and IoU rise as training proceeds while the loss falls", "none quoted here")
FIG4_CLAIM = Claim("Fig. 4", "CTS-M converges faster than CTS-nM", "none quoted here")


@torch.no_grad()
def case_dice(model, dataset, limit: int | None = None, outputs: Sequence[str] = ("one_step",), device="cpu") -> dict:
    """{output: per-case Dice array} scored exactly as `evaluate.evaluate` scores (same items, seeds, layout,
    autocast and native grid): a case is an image for DDTI and a patient for LGG."""
    from .device import autocast, in_layout, use_channels_last
    from .evaluate import EvalOptions, _batches, _native_source, _score_batch, cts_segmenter
    from .metrics import SegmentationScores
    device = torch.device(device)
    opts = EvalOptions(outputs=tuple(outputs), limit=limit, hd95=False, n_bootstrap=0, progress=False)
    model = model.to(device).eval()
    segmenter = cts_segmenter(model, tuple(outputs))
    scores = {o: SegmentationScores(hd95=False, n_bootstrap=0) for o in outputs}
    for image, mask, meta, indices in _batches(dataset, opts):
        image = in_layout(image.to(device), use_channels_last(device))
        with autocast(device):
            preds = segmenter(image, [opts.seed * 1_000_003 + i for i in indices])
        _score_batch(scores, {o: preds[o] for o in outputs}, mask, meta, indices, _native_source(dataset))
    return {o: np.array([c["dice"] for c in s.per_case()]) for o, s in scores.items()}


def paired_difference(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of the per-case differences a - b and its 95% percentile-bootstrap interval (cases resampled)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    lo, hi = bootstrap_ci(diff, n_resamples, seed) or (float("nan"), float("nan"))
    return {"mean": float(diff.mean()), "lo": lo, "hi": hi, "n": int(diff.size)}


def verdict(lo: float, hi: float) -> str:
    """From a 95% interval of (this run's difference in the direction the paper predicts):
    above 0 -> agrees, below 0 -> disagrees, straddling 0 -> inconclusive."""
    if lo > 0:
        return "agrees"
    if hi < 0:
        return "disagrees"
    return "inconclusive"


def claim_row(claim: Claim, here: str, diff: dict) -> dict:
    """One row of a paper-vs-here table: the claim, the paper's numbers, this run's difference with its
    interval, and the verdict computed from that interval."""
    return {"source": claim.source, "claim": claim.claim, "paper's numbers": claim.paper_numbers,
            "this run": f"{here}: {100 * diff['mean']:+.2f} points [{100 * diff['lo']:+.2f}, {100 * diff['hi']:+.2f}], "
                        f"n = {diff['n']}", "verdict": verdict(diff["lo"], diff["hi"])}


def snapshot_case_dice(run_dir, dataset, limit: int | None = None, device="cpu") -> dict[int, np.ndarray]:
    """{training step: per-case one-step Dice} for every EMA snapshot of a run and its final checkpoint."""
    from .checkpoint import build_model_from_checkpoint
    return {step: case_dice(build_model_from_checkpoint(path)[0], dataset, limit, device=device)["one_step"]
            for step, path in evaluation_points(run_dir).items()}


def convergence_claim_rows(fig3: dict[int, np.ndarray], nm: dict[int, np.ndarray], m: dict[int, np.ndarray]) -> list[dict]:
    """Fig. 3 (last snapshot minus first, per case) and Fig. 4 (CTS-M minus CTS-nM, per case, averaged over the
    snapshots both runs saved: the area under the Dice-vs-step curve) as paper-vs-here rows."""
    first, last = min(fig3), max(fig3)
    rows = [claim_row(FIG3_CLAIM, f"one-step Dice at step {last} - step {first}", paired_difference(fig3[last], fig3[first]))]
    shared = sorted(set(nm) & set(m))
    mean_m, mean_nm = np.mean([m[s] for s in shared], 0), np.mean([nm[s] for s in shared], 0)
    rows.append(claim_row(FIG4_CLAIM, f"CTS-M - CTS-nM, one-step Dice averaged over {len(shared)} snapshots",
                          paired_difference(mean_m, mean_nm)))
    return rows


EQUAL_COMPUTE_CLAIM = Claim("Table 1", "CTS segments better than U-Net-type baselines",
                            "CTS ranked first; the paper states no training compute for any row")


def _seed_dice(row: dict, output: str) -> dict[int, float]:
    """{seed: headline Dice} of one output of a quality.py row (the file's headline level)."""
    return {e["seed"]: e["outputs"][output]["dice_mean"] for e in row.get("per_seed", [])
            if (e.get("outputs") or {}).get(output) is not None}


def run_model_sets(result: dict) -> list[str]:
    """The --model-set options of a quality.py run (from its argv)."""
    argv = result.get("argv", [])
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--model-set"]


def run_model_config(result: dict):
    """The ModelConfig a quality.py run trained: its --preset's with its --model-set options."""
    from .config import override, preset
    return override(preset(result["preset"])[0], run_model_sets(result))


def run_preset(result: dict) -> str:
    """The preset a quality.py run trained: its --preset, or the preset its --model-set options amount to."""
    from .config import PRESETS
    sets = run_model_sets(result)
    if not sets:
        return result["preset"]
    model = run_model_config(result)
    return next((name for name, (m, _) in PRESETS.items() if m == model), f"{result['preset']} with {' '.join(sets)}")


def equal_compute_rows(path, cts_row: str = "cts_m@anchored") -> list[dict]:
    """CTS-M's one-step sample against the supervised U-Net at equal steps and at equal training seconds, from a
    quality.py file with an equal-seconds row: what each costs and the per-seed and mean differences, with a verdict
    (every seed above 0: CTS wins; every seed below 0: the U-Net wins; else inconclusive)."""
    import json
    from pathlib import Path
    d = json.loads(Path(path).read_text())
    rows = {r["row"]: r for r in d["rows"]}
    if cts_row not in rows:
        cts_row = next(r for r in rows if r.startswith("cts_m"))
    cts = rows[cts_row]
    out = []
    for name, row in (("equal steps", rows.get("supervised")), ("equal training seconds", rows.get("supervised_same_seconds"))):
        if row is None:
            continue
        a, b = _seed_dice(cts, "one_step"), _seed_dice(row, "unet")
        diffs = [a[s] - b[s] for s in sorted(a) if s in b]
        cost_a, cost_b = cts.get("cost") or {}, row.get("cost") or {}
        out.append({
            "data": d["data_kind"], "split": d["split"], "preset": run_preset(d), "CTS-M steps": d["steps"], "comparison": name,
            "CTS-M one-step Dice": f"{100 * np.mean(list(a.values())):.1f}", "U-Net Dice": f"{100 * np.mean(list(b.values())):.1f}",
            "U-Net steps": "/".join(str(e["train"]["steps"]) for e in row.get("per_seed", [])),
            "GFLOP per step (CTS-M / U-Net)": (f"{cost_a['gflop_per_step']['total']:.2f} / {cost_b['gflop_per_step']['total']:.2f}"
                                               if cost_a.get("gflop_per_step") and cost_b.get("gflop_per_step") else "-"),
            "per-seed difference (points)": ", ".join(f"{100 * x:+.1f}" for x in diffs),
            "mean difference (points)": f"{100 * np.mean(diffs):+.1f}" if diffs else "-",
            "verdict": "agrees" if diffs and min(diffs) > 0 else "disagrees" if diffs and max(diffs) < 0 else "inconclusive"})
    return out

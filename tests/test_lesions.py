"""Lesion-wise scores (ctslib.lesions, docs/evaluation.md section 12) on masks whose answer is known by construction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ctslib import metrics as M
from ctslib.evaluate import format_table
from ctslib.lesions import lesion_scores


def _image() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 case with four expert lesions and three predicted components.

    Expert: A 10x10 (100 px), B 8x8 (64 px), C 3x3 (9 px: at most min_size=50, left out), D two 8x8 squares
    2 px apart (one lesion of 128 px: the dilation by 3 merges them).
    Prediction: A exactly (Dice 1), nothing near B (missed), D's left square only (Dice 2*64/(64+128) = 2/3),
    C exactly (matched, so not a false positive, though C is not scored), a 6x6 blob far from all (false positive).
    """
    g = np.zeros((64, 64), bool)
    p = np.zeros((64, 64), bool)
    g[5:15, 5:15] = p[5:15, 5:15] = True          # A
    g[40:48, 40:48] = True                        # B
    g[5:8, 50:53] = p[5:8, 50:53] = True          # C (small)
    g[25:33, 5:13] = p[25:33, 5:13] = True        # D, left square
    g[25:33, 15:23] = True                        # D, right square
    p[55:61, 20:26] = True                        # false positive
    return p, g


def test_known_case():
    p, g = _image()
    s = lesion_scores(p, g)
    assert (s.lesions, s.detected, s.missed, s.false_positives, s.small_lesions) == (3, 2, 1, 1, 1)
    assert s.dice == pytest.approx((1.0 + 0.0 + 2 / 3) / (3 + 1))
    # without the dilation D is two lesions (right one missed) and nothing merges; without the size limit C counts
    s0 = lesion_scores(p, g, dilation=0)
    assert (s0.lesions, s0.detected, s0.missed, s0.false_positives) == (4, 2, 2, 1)
    assert s0.dice == pytest.approx((1.0 + 0.0 + 1.0 + 0.0) / (4 + 1))
    s_all = lesion_scores(p, g, min_size=0)
    assert (s_all.lesions, s_all.detected, s_all.small_lesions) == (4, 3, 0)
    assert s_all.dice == pytest.approx((1.0 + 0.0 + 1.0 + 2 / 3) / (4 + 1))


def test_near_miss_is_detected_with_dice_zero():
    """A component within the dilation of a lesion, not touching it, matches it (BraTS): detected, Dice 0, no FP."""
    g = np.zeros((40, 40), bool)
    p = np.zeros((40, 40), bool)
    g[10:20, 10:20] = True
    p[10:20, 22:30] = True                        # 2 px gap < 3 dilation steps
    s = lesion_scores(p, g)
    assert (s.lesions, s.detected, s.missed, s.false_positives, s.dice) == (1, 1, 0, 0, 0.0)
    p2 = np.zeros_like(p)
    p2[10:20, 25:33] = True                       # 5 px gap: a miss and a false positive
    s2 = lesion_scores(p2, g)
    assert (s2.lesions, s2.detected, s2.missed, s2.false_positives, s2.dice) == (1, 0, 1, 1, 0.0)


def test_empty_cases():
    z = np.zeros((16, 16), bool)
    assert lesion_scores(z, z).dice == 1.0                     # nothing to find, nothing found
    one = z.copy()
    one[2:5, 2:5] = True
    two = one.copy()
    two[10:13, 10:13] = True
    s = lesion_scores(two, z)
    assert (s.lesions, s.false_positives, s.dice) == (0, 2, 0.0)
    small_only = lesion_scores(z, one)                          # a 9 px lesion is below min_size: not scored
    assert (small_only.lesions, small_only.small_lesions, small_only.dice) == (0, 1, 1.0)
    with pytest.raises(ValueError, match="shape"):
        lesion_scores(z, np.zeros((16, 15), bool))


def test_3d_components_join_across_slices():
    """In a volume a lesion that continues diagonally into the next slice is one component (26-connectivity)."""
    g = np.zeros((6, 20, 20), bool)
    p = np.zeros((6, 20, 20), bool)
    g[1:3, 4:10, 4:10] = True
    g[3, 10:14, 10:14] = True                      # touches the block above only at a corner: same lesion
    p[1:4, 4:10, 4:10] = True                      # one predicted component, 36 px too many in slice 3
    s = lesion_scores(p, g, dilation=0, min_size=0)
    inter, size_p, size_g = 72, 108, 72 + 16
    assert (s.lesions, s.detected, s.false_positives) == (1, 1, 0)
    assert s.dice == pytest.approx(2 * inter / (size_p + size_g))


def test_segmentation_scores_report_lesion_wise_per_case_and_summed():
    p, g = _image()
    acc = M.SegmentationScores(n_bootstrap=0)
    acc.add(p, g, "image-1", 0)
    acc.add(g, g, "image-2", 0)                    # a perfect case: 3 lesions, all found, Dice 1
    cases = {c["case"]: c for c in acc.per_case()}
    assert cases["image-1"]["lesions"] == lesion_scores(p, g).as_dict()
    assert cases["image-2"]["lesions"]["dice"] == 1.0
    s = acc.summary()
    lw = s["lesion_wise"]
    assert (lw["lesions"], lw["detected"], lw["missed"], lw["false_positives"], lw["n"]) == (6, 5, 1, 1, 2)
    assert lw["dice"]["mean"] == pytest.approx((5 / 12 + 1.0) / 2)
    assert (lw["dilation"], lw["min_size"]) == (3, 50)
    json.dumps(s, allow_nan=False)
    off = M.SegmentationScores(lesion_wise=False, n_bootstrap=0)
    off.add(p, g, "image-1", 0)
    assert off.summary()["lesion_wise"] is None and off.per_case()[0]["lesions"] is None


def test_format_table_shows_lesion_wise_rows():
    p, g = _image()
    acc = M.SegmentationScores(n_bootstrap=0)
    acc.add(p, g, "image-1", 0)
    table = format_table({"one_step": acc.summary()})
    row = next(line for line in table.splitlines() if line.startswith("one_step") and "0.4167" in line)
    assert row.split()[-5:] == ["3", "2", "1", "1", "1"]       # lesions, detected, missed, false positives, cases
    assert "BraTS 2023" in table and "medpy convention" in table


def test_evaluate_cli_reports_the_chosen_hd95_convention_and_lesion_wise_scores(tiny_checkpoint, tmp_path, capsys):
    """`evaluate --hd95-convention` reaches the scores: monai gives the larger-directed HD95 of the same masks."""
    from ctslib.cli import main
    ckpt = tiny_checkpoint("phantom-us:8")
    results = {}
    for convention in ("medpy", "monai"):
        out = tmp_path / f"{convention}.json"
        assert main(["evaluate", "--ckpt", str(ckpt), "--split", "test", "--limit", "6", "--outputs", "aux_head",
                     "--hd95-convention", convention, "--json", str(out), "--device", "cpu"]) == 0
        results[convention] = json.loads(out.read_text())["aux_head"]
        assert results[convention]["hd95_convention"] == convention
        assert f"HD95: {convention} convention" in capsys.readouterr().out
    medpy, monai = (results[c]["per_slice"]["hd95"]["mean"] for c in ("medpy", "monai"))
    assert monai >= medpy
    assert results["medpy"]["per_slice"]["dice"] == results["monai"]["per_slice"]["dice"]
    lesion_wise = results["medpy"]["lesion_wise"]
    assert lesion_wise["n"] == results["medpy"]["per_volume"]["n"] and lesion_wise["dice"]["mean"] is not None

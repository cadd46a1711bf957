"""Tests for ctslib.metrics (docs/evaluation.md and docs/method.md section 7)."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from medpy.metric.binary import hd95 as medpy_hd95          # the outside references: the dev extra installs them
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from ctslib import metrics as M
from ctslib.legacy_metrics import legacy_soft_dice, legacy_soft_iou


# --------------------------------------------------------------------------- #
# independent HD95: a brute-force one here, MedPy and MONAI as outside references
# --------------------------------------------------------------------------- #
def _brute_boundary(m: np.ndarray) -> np.ndarray:
    """Foreground points with a face neighbour that is background or off-image."""
    padded = np.pad(m, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in range(m.ndim))
    boundary = np.zeros_like(m)
    for ax in range(m.ndim):
        for step in (-1, 1):
            nb = np.roll(padded, step, axis=ax)[inner]
            boundary |= m & ~nb
    return boundary


def _brute_hd95(p: np.ndarray, g: np.ndarray, spacing) -> float:
    sp = np.asarray(spacing, dtype=np.float64)
    cp = np.argwhere(_brute_boundary(p)) * sp
    cg = np.argwhere(_brute_boundary(g)) * sp
    d = np.sqrt(((cp[:, None, :] - cg[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.hstack((d.min(1), d.min(0))), 95))


def _monai_hd95(p: np.ndarray, g: np.ndarray, spacing) -> float:
    with warnings.catch_warnings():                     # MONAI's own deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        p_t, g_t = (torch.from_numpy(m)[None, None].float() for m in (p, g))
        return float(compute_hausdorff_distance(p_t, g_t, percentile=95, spacing=spacing).item())


def _blob(rng: np.random.Generator, shape, frac: float) -> np.ndarray:
    """Random smooth blob mask covering roughly ``frac`` of the image."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0)
    m = noise > np.quantile(noise, 1.0 - frac)
    if not m.any():
        m.flat[rng.integers(m.size)] = True
    return m


# --------------------------------------------------------------------------- #
# edge cases
# --------------------------------------------------------------------------- #
def test_both_empty():
    z = np.zeros((16, 16), bool)
    assert M.dice(z, z) == 1.0
    assert M.iou(z, z) == 1.0
    assert M.hd95(z, z) == 0.0
    assert M.hd95(z, z, fallback="diagonal") == 0.0


@pytest.mark.parametrize("swap", [False, True])
def test_one_empty(swap):
    z = np.zeros((256, 256), bool)
    m = z.copy()
    m[100:110, 100:110] = True
    p, g = (z, m) if swap else (m, z)
    assert M.dice(p, g) == 0.0
    assert M.iou(p, g) == 0.0
    assert math.isnan(M.hd95(p, g))
    assert M.hd95(p, g, fallback="diagonal") == pytest.approx(362.04, abs=0.01)


def test_diagonal_constants():
    assert M.image_diagonal((256, 256)) == pytest.approx(362.04, abs=0.01)
    assert M.SLICE_256_DIAGONAL_PX == pytest.approx(362.04, abs=0.01)
    assert M.image_diagonal((240, 240, 155), 1.0) == pytest.approx(373.13, abs=0.01)
    assert M.BRATS_VOLUME_DIAGONAL_MM == pytest.approx(373.13, abs=0.01)
    z = np.zeros((240, 240, 155), bool)
    m = z.copy()
    m[0, 0, 0] = True
    assert M.hd95(m, z, spacing=1.0, fallback="diagonal") == pytest.approx(373.13, abs=0.01)
    with pytest.raises(ValueError):
        M.hd95(m, z, fallback="bogus")


def test_identical_masks_hd95_zero():
    rng = np.random.default_rng(1)
    m = _blob(rng, (40, 40), 0.2)
    assert M.hd95(m, m) == 0.0
    assert M.dice(m, m) == 1.0


def test_single_pixels_three_apart():
    a = np.zeros((12, 12), bool)
    b = a.copy()
    a[4, 2] = True
    b[4, 5] = True
    assert M.hd95(a, b) == pytest.approx(3.0)
    # spacing scales the distance along that axis
    assert M.hd95(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.5)


def test_iou_is_dice_over_two_minus_dice_constructed():
    p = np.zeros(20, bool)
    g = np.zeros(20, bool)
    p[:10] = True  # |P| = 10
    g[1:11] = True  # |G| = 10, |P∩G| = 9
    p2, g2 = p.reshape(4, 5), g.reshape(4, 5)
    d, j = M.dice_iou(p2, g2)
    assert d == pytest.approx(0.9)
    assert j == pytest.approx(0.81818, abs=1e-5)
    assert M.iou_from_dice(0.9) == pytest.approx(0.81818, abs=1e-5)


def test_iou_is_dice_over_two_minus_dice_random():
    rng = np.random.default_rng(2)
    for _ in range(10):
        p = rng.random((30, 30)) > 0.6
        g = rng.random((30, 30)) > 0.5
        d, j = M.dice_iou(p, g)
        assert j == pytest.approx(d / (2 - d), rel=1e-12)
        inter, union = (p & g).sum(), (p | g).sum()
        assert j == pytest.approx(inter / union)


def test_threshold_and_torch_inputs():
    prob = np.array([[0.2, 0.7], [0.9, 0.4]])
    gt = np.array([[0, 1], [1, 0]])
    assert M.dice(prob, gt) == 1.0
    assert M.dice(torch.tensor(prob), torch.tensor(gt)) == 1.0
    assert M.dice(prob, gt, threshold=0.8) == pytest.approx(2 * 1 / 3)
    a = torch.zeros(1, 12, 12, dtype=torch.bool)
    b = a.clone()
    a[0, 4, 2] = True
    b[0, 4, 5] = True
    assert M.hd95(a, b) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        M.dice(np.zeros((3, 3)), np.zeros((3, 4)))


# --------------------------------------------------------------------------- #
# HD95 cross-check against an independent implementation
# --------------------------------------------------------------------------- #
_CASES = [((48, 48), None)] * 10 + [((14, 20, 22), (2.5, 1.0, 0.7))] * 6 + [
    ((40, 36), (0.8, 1.3))
] * 4


@pytest.mark.parametrize("k", range(len(_CASES)))
def test_hd95_matches_medpy_and_brute_force(k):
    shape, spacing = _CASES[k]
    rng = np.random.default_rng(100 + k)
    p = _blob(rng, shape, rng.uniform(0.05, 0.3))
    g = _blob(rng, shape, rng.uniform(0.05, 0.3))
    sp = spacing if spacing is not None else (1.0,) * len(shape)
    assert (M.surface(p) == _brute_boundary(p)).all()
    ours = M.hd95(p, g, spacing=spacing)
    assert ours == pytest.approx(float(medpy_hd95(p, g, voxelspacing=sp)), rel=1e-9, abs=1e-9)
    assert ours == pytest.approx(_brute_hd95(p, g, sp), rel=1e-9, abs=1e-9)
    assert ours > 0


@pytest.mark.parametrize("k", range(0, len(_CASES), 3))
def test_hd95_monai_convention_matches_monai(k):
    """convention="monai" = MONAI's compute_hausdorff_distance(percentile=95), which works in float32."""
    shape, spacing = _CASES[k]
    rng = np.random.default_rng(100 + k)
    p = _blob(rng, shape, rng.uniform(0.05, 0.3))
    g = _blob(rng, shape, rng.uniform(0.05, 0.3))
    ours = M.hd95(p, g, spacing=spacing, convention="monai")
    assert ours == pytest.approx(_monai_hd95(p, g, spacing), rel=1e-6)
    assert ours >= M.hd95(p, g, spacing=spacing)            # the larger directed percentile >= the pooled one


def _conventions_script():
    """scripts/hd95_conventions.py, which prints docs/evaluation.md section 11's tables."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "hd95_conventions.py"
    spec = importlib.util.spec_from_file_location("hd95_conventions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _square_and_far_blob() -> tuple[np.ndarray, np.ndarray]:
    return _conventions_script().square_and_far_blob()


def test_hd95_conventions_differ_on_a_far_false_positive():
    """docs/evaluation.md section 11: the far blob is 8 of 100 P-surface pixels, under 5% of the 192 pooled distances
    but over 5% of the P->G ones, so MONAI's HD95 is more than ten times medpy's."""
    p, g = _square_and_far_blob()
    pooled, larger = M.hd95(p, g), M.hd95(p, g, convention="monai")
    assert pooled == pytest.approx(float(medpy_hd95(p, g)), abs=1e-12)
    assert larger == pytest.approx(_monai_hd95(p, g, None), rel=1e-6)
    assert larger > 10 * pooled > 0
    with pytest.raises(ValueError, match="convention"):
        M.hd95(p, g, convention="deepmind")


def test_convention_tables_of_the_docs_agree_with_medpy_and_monai():
    """The rows of scripts/hd95_conventions.py: ctslib's two HD95 conventions equal MedPy's and MONAI's, ctslib's
    per-slice Dice equals MONAI's with ignore_empty=False and its dice_tumour MONAI's default (empty slices NaN)."""
    script = _conventions_script()
    rows = dict((name, value) for name, _, value in script.hd95_rows(*_square_and_far_blob()))
    medpy_row = rows["medpy.metric.binary.hd95"]
    monai_row = rows["monai.metrics.compute_hausdorff_distance(percentile=95)"]
    assert rows["ctslib hd95(convention='medpy') (default)"] == pytest.approx(medpy_row, abs=1e-12)
    assert rows["ctslib hd95(convention='monai')"] == pytest.approx(monai_row, rel=1e-6)
    dice_rows = dict(script.dice_rows(script.three_slices()))
    assert dice_rows["MONAI DiceMetric (default), both empty"] == "nan"
    assert dice_rows["ctslib dice, both empty"] == dice_rows["MONAI DiceMetric (ignore_empty=False), both empty"]
    assert dice_rows["ctslib per_slice dice_tumour mean (slices with tumour)"] == dice_rows[
        "MONAI DiceMetric (default), aggregate() mean"] == "0.7000"
    assert dice_rows["ctslib per_slice dice mean (empty slice counts 1)"] == dice_rows[
        "MONAI DiceMetric (ignore_empty=False), aggregate() mean"] == "0.8000"


# --------------------------------------------------------------------------- #
# aggregator
# --------------------------------------------------------------------------- #
def _toy():
    """Two cases, 2 and 3 slices of 8x8, with hand-countable overlaps."""
    z = np.zeros((8, 8), bool)

    def box(r0, r1, c0, c1):
        m = z.copy()
        m[r0:r1, c0:c1] = True
        return m

    recs = [
        # case A: slice 0 |P|=16,|G|=16,∩=12 ; slice 1 |P|=4,|G|=0 (false positive)
        ("A", 0, box(0, 4, 0, 4), box(1, 5, 0, 4)),
        ("A", 1, box(0, 2, 0, 2), z),
        # case B: slice 0 empty/empty ; slice 1 |P|=9,|G|=9,∩=9 ; slice 2 |P|=0,|G|=4
        ("B", 0, z, z),
        ("B", 1, box(2, 5, 2, 5), box(2, 5, 2, 5)),
        ("B", 2, z, box(6, 8, 6, 8)),
    ]
    return recs


def test_one_slice_case_gets_the_2d_hd95_of_its_image():
    """A case of one slice (a DDTI image) is scored in 2-D: per-volume HD95 = per-slice HD95, in-plane spacing."""
    g = np.zeros((20, 20), bool); g[8:12, 8:12] = True
    p = np.zeros((20, 20), bool); p[2:18, 3:18] = True       # G inside P: interiors differ from surfaces
    expected = _brute_hd95(p, g, (1.0, 1.0))
    acc = M.SegmentationScores(volume_spacing=(5.0, 1.0, 1.0), n_bootstrap=0)
    acc.add(p, g, ["img"], [0])
    (case,) = acc.per_case()
    assert case["hd95"] == pytest.approx(expected) == pytest.approx(acc._slices[0]["hd95"])
    assert M.hd95(p[None], g[None], (5.0, 1.0, 1.0)) != pytest.approx(expected)   # what a 3-D erosion gives
    undefined = M.SegmentationScores(hd95_fallback="diagonal", n_bootstrap=0)
    undefined.add(np.zeros_like(g), g, ["img"], [0])
    assert undefined.per_case()[0]["hd95"] == pytest.approx(M.image_diagonal((20, 20)))


def test_aggregator_per_volume_dice_hand_computed():
    acc = M.SegmentationScores()
    for case, sl, p, g in _toy():
        acc.add(p, g, [case], [sl])
    s = acc.summary()
    dA = 2 * 12 / (20 + 16)  # P=16+4, G=16, ∩=12
    dB = 2 * 9 / (9 + 13)  # P=9, G=9+4, ∩=9
    per_case = {c["case"]: c for c in acc.per_case()}
    assert per_case["A"]["dice"] == pytest.approx(dA)
    assert per_case["B"]["dice"] == pytest.approx(dB)
    assert per_case["A"]["iou"] == pytest.approx(dA / (2 - dA))
    pv = s["per_volume"]
    assert pv["n"] == 2
    assert pv["dice"]["mean"] == pytest.approx((dA + dB) / 2)
    assert pv["dice"]["std"] == pytest.approx(abs(dA - dB) / 2)
    lo, hi = pv["dice"]["ci95"]
    assert lo <= pv["dice"]["mean"] <= hi
    # per-slice block
    ps = s["per_slice"]
    assert ps["n"] == 5
    assert ps["n_tumour"] == 3  # A0, B1, B2
    assert ps["false_positive_empty"] == 1  # A1
    assert ps["hd95_undefined"] == 2  # A1, B2
    slice_dice = [2 * 12 / 32, 0.0, 1.0, 1.0, 0.0]
    assert ps["dice"]["mean"] == pytest.approx(np.mean(slice_dice))
    assert ps["dice"]["std"] == pytest.approx(np.std(slice_dice))
    assert ps["dice_tumour"]["mean"] == pytest.approx(np.mean([0.75, 1.0, 0.0]))
    # hd95 ("nan" policy): defined on A0 (=1), B0 (=0), B1 (=0)
    h_a0 = M.hd95(_toy()[0][2], _toy()[0][3])
    assert ps["hd95"]["mean"] == pytest.approx(np.mean([h_a0, 0.0, 0.0]))


def test_aggregator_batches_and_slice_order():
    """Batched, out-of-order adds give the same result as ordered single adds."""
    rng = np.random.default_rng(5)
    vols = {c: (rng.random((6, 16, 16)) > 0.7, rng.random((6, 16, 16)) > 0.6) for c in "xyz"}
    ordered = M.SegmentationScores(volume_spacing=(3.0, 1.0, 1.0))
    for c, (p, g) in vols.items():
        for k in range(6):
            ordered.add(p[k], g[k], c, k)
    shuffled = M.SegmentationScores(volume_spacing=(3.0, 1.0, 1.0))
    items = [(c, k) for c in vols for k in range(6)]
    perm = rng.permutation(len(items))
    for chunk in np.array_split(perm, 4):
        cs = [items[i][0] for i in chunk]
        ks = np.array([items[i][1] for i in chunk])
        ps = np.stack([vols[c][0][k] for c, k in (items[i] for i in chunk)])[:, None]
        gs = np.stack([vols[c][1][k] for c, k in (items[i] for i in chunk)])[:, None]
        shuffled.add(ps.astype(np.float32), gs.astype(np.uint8), cs, ks)
    a, b = ordered.summary(), shuffled.summary()
    assert a["per_volume"] == b["per_volume"]
    assert a["per_slice"]["dice"]["mean"] == pytest.approx(b["per_slice"]["dice"]["mean"])
    for case in shuffled.per_case():
        p, g = vols[case["case"]]
        assert case["hd95"] == pytest.approx(M.hd95(p, g, spacing=(3.0, 1.0, 1.0)))
    with pytest.raises(ValueError):
        shuffled.add(vols["x"][0][0], vols["x"][1][0], "x", 0)  # duplicate slice


def test_bootstrap_deterministic_and_contains_mean():
    rng = np.random.default_rng(7)
    vals = rng.uniform(0.5, 0.95, size=25)
    ci1 = M.bootstrap_ci(vals, n_resamples=2000, seed=123)
    ci2 = M.bootstrap_ci(vals, n_resamples=2000, seed=123)
    ci3 = M.bootstrap_ci(vals, n_resamples=2000, seed=124)
    assert ci1 == ci2
    assert ci1 != ci3
    assert ci1[0] < vals.mean() < ci1[1]
    assert M.bootstrap_ci([]) is None
    assert M.bootstrap_ci([0.4]) == [0.4, 0.4]
    assert M.bootstrap_ci(vals, n_resamples=0) is None
    # through the accumulator, with a fixed seed the summary is reproducible
    recs = []
    for c in range(8):
        p = rng.random((4, 12, 12)) > 0.5
        g = rng.random((4, 12, 12)) > 0.5
        recs += [(f"c{c}", k, p[k], g[k]) for k in range(4)]
    s1, s2 = (_summarize(recs, seed=3) for _ in range(2))
    assert s1 == s2
    lo, hi = s1["per_volume"]["dice"]["ci95"]
    assert lo <= s1["per_volume"]["dice"]["mean"] <= hi


def _hand_bootstrap(v: np.ndarray, n_resamples: int, seed: int, level: float = 0.95) -> list[float]:
    """The percentile bootstrap written out: resample means, then their (1-level)/2 percentiles."""
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_resamples, v.size))
    a = (1.0 - level) / 2.0 * 100.0
    return [float(x) for x in np.percentile(v[idx].mean(axis=1), [a, 100.0 - a])]


@pytest.mark.parametrize("n, level", [(5, 0.95), (7, 0.95), (49, 0.95), (200, 0.9)])
def test_bootstrap_is_the_written_out_percentile_bootstrap(n, level):
    """scipy.stats.bootstrap(method="percentile") with the same generator: the same interval to 1e-12."""
    vals = np.random.default_rng(n).uniform(0.3, 0.95, size=n)
    got = M.bootstrap_ci(vals, n_resamples=1000, seed=5, level=level)
    assert got == pytest.approx(_hand_bootstrap(vals, 1000, 5, level), abs=1e-12)
    assert got != pytest.approx(_hand_bootstrap(vals, 1000, 6, level), abs=1e-12)   # the seed matters


def _summarize(records, **kwargs) -> dict:
    """SegmentationScores over (case, slice, pred, gt) records, one slice at a time."""
    acc = M.SegmentationScores(**kwargs)
    for case, sl, p, g in records:
        acc.add(p, g, [case], [sl])
    return acc.summary()


def _walk(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _walk(v)
    else:
        yield x


@pytest.mark.parametrize("fallback", ["nan", "diagonal"])
def test_summary_json_serialisable_and_nan_free(fallback):
    acc = M.SegmentationScores(hd95_fallback=fallback)
    for case, sl, p, g in _toy():
        acc.add(p, g, [case], [sl])
    z = np.zeros((8, 8), bool)
    one = z.copy()
    one[3, 3] = True
    acc.add(one, z, "C", 0)  # case C: volume-level HD95 undefined
    s = acc.summary()
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text) == s
    for v in _walk(s):
        assert v is None or type(v) in (int, float, str, bool)
        if isinstance(v, float):
            assert math.isfinite(v)
    assert s["per_slice"]["hd95_undefined"] == 3
    assert s["per_volume"]["hd95_undefined"] == 1
    assert s["per_slice"]["false_positive_empty"] == 2
    # required shape
    for key in ("dice", "iou", "hd95", "dice_tumour"):
        assert set(s["per_slice"][key]) == {"mean", "std"}
    for key in ("dice", "iou", "hd95"):
        assert set(s["per_volume"][key]) == {"mean", "std", "ci95"}
    if fallback == "diagonal":
        diag = M.image_diagonal((8, 8))
        n_hd = 6  # all slices contribute
        assert s["per_slice"]["hd95"]["mean"] > 3 * diag / n_hd - 1e-9
        assert s["per_volume"]["n"] == 3


def test_accumulator_hd95_convention():
    p, g = _square_and_far_blob()
    for convention in M.HD95_CONVENTIONS:
        acc = M.SegmentationScores(hd95_convention=convention, n_bootstrap=0)
        acc.add(p, g, "c", 0)
        s = acc.summary()
        assert s["hd95_convention"] == convention
        assert s["per_slice"]["hd95"]["mean"] == pytest.approx(M.hd95(p, g, convention=convention))
        assert s["per_volume"]["hd95"]["mean"] == pytest.approx(M.hd95(p, g, convention=convention))
    with pytest.raises(ValueError, match="convention"):
        M.SegmentationScores(hd95_convention="pooled")


def test_empty_accumulator_summary():
    s = M.SegmentationScores().summary()
    json.dumps(s, allow_nan=False)
    assert s["per_slice"]["n"] == 0
    assert s["per_slice"]["dice"] == {"mean": None, "std": None}
    assert s["per_volume"]["dice"]["ci95"] is None


def test_single_value_std_zero():
    assert M.mean_std([0.7]) == {"mean": 0.7, "std": 0.0}
    assert M.mean_std([float("nan")]) == {"mean": None, "std": None}


# --------------------------------------------------------------------------- #
# legacy soft Dice / IoU
# --------------------------------------------------------------------------- #
def test_legacy_soft_dice_hand_computed():
    prob = np.array([[[0.9, 0.2], [0.6, 0.0]], [[0.1, 0.8], [0.0, 0.3]]])
    tgt = np.array([[[1, 0], [1, 0]], [[0, 1], [0, 0]]], dtype=float)
    inter = 0.9 + 0.6 + 0.8  # 2.3
    sp = 0.9 + 0.2 + 0.6 + 0.1 + 0.8 + 0.3  # 2.9
    sg = 3.0
    eps = 1e-6
    assert legacy_soft_dice(prob, tgt) == pytest.approx((2 * inter + eps) / (sp + sg + eps))
    assert legacy_soft_iou(prob, tgt) == pytest.approx((inter + eps) / (sp + sg - inter + eps))
    assert legacy_soft_dice(prob, tgt) == pytest.approx(4.6 / 5.9, rel=1e-6)
    assert legacy_soft_dice(torch.tensor(prob), torch.tensor(tgt)) == pytest.approx(
        legacy_soft_dice(prob, tgt)
    )


def test_legacy_differs_from_mean_per_slice_dice():
    big_g = np.zeros((32, 32), bool)
    big_g[2:22, 2:22] = True  # 400 px, predicted perfectly
    small_g = np.zeros((32, 32), bool)
    small_g[5:7, 5:7] = True  # 4 px, missed entirely
    small_p = np.zeros((32, 32), bool)
    small_p[20:22, 20:22] = True
    prob = np.stack([big_g, small_p]).astype(float)
    tgt = np.stack([big_g, small_g]).astype(float)
    per_slice = np.mean([M.dice(big_g, big_g), M.dice(small_p, small_g)])
    assert per_slice == pytest.approx(0.5)
    legacy = legacy_soft_dice(prob, tgt)
    assert legacy == pytest.approx(800 / 808, rel=1e-6)
    assert abs(legacy - per_slice) > 0.4

"""Scoring on the native grid (docs/evaluation.md section 5): predictions go back through `to_native` and meet
the expert mask as stored; `grid="model"` scores at the model's working resolution."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.packed import PackedDataset, pack_splits
from ctslib.data import open_dataset
from ctslib.data.preprocess import fit_to_size, to_native
from ctslib.data.readers import read_nifti
from ctslib.data.spec import default_data_root, is_sample_root
from ctslib.evaluate import EvalOptions, evaluate_segmenter
from ctslib.metrics import dice

DATA = default_data_root()
FULL_DATA = not is_sample_root(DATA)          # full sets: 256 px LGG, 300 px DDTI; the sample: 128 px
FAST = EvalOptions(n_bootstrap=10, progress=False, batch_size=3)


def make_thin_pairs(root: Path, n: int = 4, shape=(30, 45)) -> str:
    """A folder of X.png + X_mask.png with 1-pixel-wide lines: the model grid cannot hold them exactly."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        mask = np.zeros(shape, np.uint8)
        mask[5 + k, 3:40] = 255                     # a horizontal line
        mask[8:25, 10 + 3 * k] = 255                # a vertical one
        image = (rng.uniform(0, 60, shape) + (mask > 0) * 150).astype(np.uint8)
        Image.fromarray(image).save(root / f"{k}.png")
        Image.fromarray(mask if k else np.zeros(shape, np.uint8)).save(root / f"{k}_mask.png")   # item 0: empty
    return f"pairs:{root}"


def oracle(ds):
    """A segmenter that returns the model-grid expert mask (item index = seed with EvalOptions.seed 0)."""
    return lambda image, seeds: {"oracle": torch.stack([ds[s][1] for s in seeds])}


# ------------------------------------------------------------------------------------------ to_native
def test_to_native_inverts_pad_exactly():
    mask = torch.from_numpy(np.random.default_rng(1).random((1, 240, 200)) > 0.7).float()
    image = torch.rand(2, 240, 200)
    _, m = fit_to_size(image, mask, 256, "pad")
    assert m.shape == (1, 256, 256)
    assert torch.equal(to_native(m, (240, 200), 256, "pad"), mask)


def test_to_native_inverts_integer_resize_of_blocky_masks():
    block = np.random.default_rng(2).random((1, 20, 10)) > 0.5          # 3x3 blocks, padded 60x30 -> 60x60
    mask = torch.from_numpy(np.kron(block, np.ones((1, 3, 3)))).float()
    _, m = fit_to_size(torch.rand(1, 60, 30), mask, 20, "resize")
    assert m.shape == (1, 20, 20)
    assert torch.equal(to_native(m, (60, 30), 20, "resize"), mask)
    assert to_native(torch.rand(1, 20, 20), (60, 30), 20, "resize", "bilinear").shape == (1, 60, 30)
    with pytest.raises(ValueError, match="fit must be"):
        to_native(m, (60, 30), 20, "stretch")


# ------------------------------------------------------------------------------------------ scoring
def test_oracle_is_perfect_on_the_model_grid_but_not_on_the_native_one(tmp_path):
    ds = open_dataset(make_thin_pairs(tmp_path / "thin"), "all", 16, cache_dir=str(tmp_path / "c"))
    model = evaluate_segmenter(oracle(ds), ds, EvalOptions(**{**FAST.__dict__, "grid": "model"}))["oracle"]
    native = evaluate_segmenter(oracle(ds), ds, FAST)["oracle"]
    assert model["grid"] == "model" and native["grid"] == "native"
    assert model["per_slice"]["dice"]["mean"] == 1.0
    # the native score is the Dice of the mapped-back mask against the PNG, computed here by hand
    want = []
    for i in range(len(ds)):
        gt = np.asarray(Image.open(ds.records[i].mask)) > 127
        back = to_native(ds[i][1][None], gt.shape, 16, "resize")[0, 0].numpy() > 0.5
        want.append(dice(back, gt))
    assert native["per_slice"]["dice"]["mean"] == pytest.approx(np.mean(want), abs=1e-9)
    assert native["per_slice"]["dice"]["mean"] < 0.9                   # thin lines do not survive 16 px
    assert want[0] == 1.0 and min(want) == 0.0     # the empty mask stays empty; some lines vanish at 16 px


def test_limit_and_unknown_grid(tmp_path):
    ds = open_dataset(make_thin_pairs(tmp_path / "thin"), "all", 16, cache_dir=str(tmp_path / "c"))
    res = evaluate_segmenter(oracle(ds), ds, EvalOptions(**{**FAST.__dict__, "limit": 2}))["oracle"]
    assert res["per_slice"]["n"] == 2 and res["grid"] == "native"
    with pytest.raises(ValueError, match="grid must be one of native, model"):
        evaluate_segmenter(oracle(ds), ds, EvalOptions(grid="native-ish"))


def test_phantoms_have_no_native_grid():
    ds = open_dataset("phantom:6", "test", 16)
    assert ds.native_mask(0) is None and not ds.has_native_grid
    assert evaluate_segmenter(oracle(ds), ds, FAST)["oracle"]["grid"] == "model"


# ------------------------------------------------------------------------------------ real datasets
@pytest.mark.parametrize("spec, shape", [("lgg", (256, 256)), ("ddti", (300, 300))])
def test_real_pairs_native_masks_are_the_pngs(spec, shape, tmp_path):
    ds = open_dataset(spec, "test", 32, cache_dir=str(tmp_path))
    i = next(k for k in range(len(ds)) if ds[k][1].any())
    native = ds.native_mask(i)
    with Image.open(ds.records[i].mask) as im:
        stored = im.size[::-1]
    assert native.shape == stored and native.dtype == bool and min(stored) > 32
    if FULL_DATA:
        assert native.shape == shape
    np.testing.assert_array_equal(native, np.asarray(Image.open(ds.records[i].mask).convert("L")) > 127)
    # a perfect model-grid mask loses detail at 32 px: scored on the native grid it is below 1
    res = evaluate_segmenter(oracle(ds), ds, EvalOptions(**{**FAST.__dict__, "limit": 40}))["oracle"]
    assert 0.5 < res["per_slice"]["dice"]["mean"] < 1.0


def test_brats_volume_native_mask_is_the_label_slice(tmp_path):
    ds = open_dataset(f"brats:{DATA / 'brats2015'}", "all", 64, cache_dir=str(tmp_path))
    i = next(k for k in range(len(ds)) if ds[k][1].any())
    case, z = ds.meta(i)["case"], ds.meta(i)["slice"]
    folder = next(c.folder for c in ds.cases if c.name == case)
    labels = read_nifti(next(Path(folder).glob("*OTMultiClass*")))
    np.testing.assert_array_equal(ds.native_mask(i), labels[:, :, z] > 0)
    assert ds.native_mask(i).shape == (240, 240)


def test_brats_slice_layout_native_mask(tmp_path):
    ds = open_dataset(f"brats-slices:{DATA / 'brats2020_slices'}", "train", 32, cache_dir=str(tmp_path))
    for i in range(len(ds)):
        labels = read_nifti(ds.items[i].label).squeeze()
        np.testing.assert_array_equal(ds.native_mask(i), labels > 0)


def test_packed_datasets_keep_the_native_masks(tmp_path):
    out = tmp_path / "ddti.npz"
    meta = pack_splits("ddti", 32, ("test",), out, limit=5)
    assert meta["splits"]["test"]["native_grid"] and meta["splits"]["test"]["fit"] == "resize"
    packed, ds = PackedDataset(out, "test"), open_dataset("ddti", "test", 32, limit=5)
    assert packed.fit == "resize" and packed.has_native_grid and ds.has_native_grid
    for i in range(len(ds)):
        np.testing.assert_array_equal(packed.native_mask(i), ds.native_mask(i))
    a = evaluate_segmenter(oracle(ds), ds, FAST)["oracle"]
    b = evaluate_segmenter(oracle(packed), packed, FAST)["oracle"]
    assert a["per_slice"]["dice"] == b["per_slice"]["dice"] and b["grid"] == "native"


def test_hd95_off_skips_it_and_keeps_dice(tmp_path):
    ds = open_dataset(make_thin_pairs(tmp_path / "thin"), "all", 16, cache_dir=str(tmp_path / "c"))
    on = evaluate_segmenter(oracle(ds), ds, FAST)["oracle"]
    off = evaluate_segmenter(oracle(ds), ds, EvalOptions(**{**FAST.__dict__, "hd95": False}))["oracle"]
    assert on["per_slice"]["hd95"]["mean"] is not None and off["per_slice"]["hd95"]["mean"] is None
    assert off["per_slice"]["hd95_undefined"] == 0 and off["per_volume"]["hd95"]["mean"] is None
    assert off["per_slice"]["dice"] == on["per_slice"]["dice"]


def test_resolution_ceilings_table(tmp_path):
    """Notebook 02's table: one row per file-backed dataset and size, phantoms left out, identity at the native size."""
    from ctslib.evaluate import resolution_ceilings
    spec = make_thin_pairs(tmp_path / "thin", shape=(32, 32))
    rows = resolution_ceilings({"thin": spec, "phantom": "phantom:4"}, sizes=(8, 32), split="all")
    assert [(r["dataset"], r["size"]) for r in rows] == [("thin", 8), ("thin", 32)]
    assert rows[0]["dice_tumour"] < 0.5 and rows[1]["dice_all"] == 1.0 and rows[1]["n"] == 4


def test_case_spacing_scales_volume_hd95():
    from ctslib.metrics import SegmentationScores
    gt = np.zeros((6, 20, 20), bool)
    gt[1:5, 5:12, 5:12] = True
    pred = np.roll(gt, 3, axis=1)                          # 3 voxels along the stacked volume's second axis
    hd = {}
    for spacing in (None, (1.0, 2.0, 1.0)):
        s = SegmentationScores(n_bootstrap=0, case_spacing={"a": spacing} if spacing else {})
        s.add(pred, gt, ["a"] * 6, list(range(6)))
        hd[spacing] = s.per_case()[0]["hd95"]
    assert hd[None] == pytest.approx(3.0) and hd[(1.0, 2.0, 1.0)] == pytest.approx(6.0)


def _stretched_copy(src: Path, dst: Path, factor: float) -> None:
    """The BraTS 2015 case with its voxels `factor` times longer along the first voxel axis."""
    import nibabel as nib
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name.endswith(".nii.gz"):
            img = nib.load(str(f))
            affine = img.affine.copy()
            affine[:3, 0] *= factor
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), dst / f.name)
        elif f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())


def test_volume_hd95_uses_each_files_voxel_size(tmp_path):
    """Per-volume HD95 is in mm from each NIfTI header (docs/evaluation.md section 6), not in voxels."""
    src = DATA / "brats2015" / "brats_2013_pat0005_1"
    hd = {}
    for factor in (1.0, 2.0):
        _stretched_copy(src, tmp_path / f"x{factor}" / src.name, factor)
        ds = open_dataset(f"brats:{tmp_path / f'x{factor}'}", "all", 64, cache_dir=str(tmp_path / f"c{factor}"))
        spacing = ds.volume_spacing(src.name)
        assert sorted(spacing) == sorted((1.0, 1.0, factor))
        axis = -2 if spacing[1] == factor else -1            # the stretched in-plane axis of (slice, X, Y)
        shifted = lambda image, seeds: {"m": torch.roll(torch.stack([ds[s][1] for s in seeds]), 2, dims=axis)}  # noqa: E731
        res = evaluate_segmenter(shifted, ds, EvalOptions(n_bootstrap=0, progress=False, batch_size=32))
        hd[factor] = res["m"]["per_volume"]["hd95"]["mean"]
    assert hd[1.0] > 0 and 1.5 < hd[2.0] / hd[1.0] <= 2.0 + 1e-9

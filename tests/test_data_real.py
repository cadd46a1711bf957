"""Real files: LGG, DDTI, BraTS 2015 volumes, BraTS 2020 slices.

On the full data sets (CTS_DATA_ROOT, as in CI) and on the small in-repo sample (data/sample, a
fresh clone): counts are read from each set's CSV/folders; the full sets' published facts
(518 DDTI crops, 7 LGG val patients, 2 BraTS 2015 volumes of 240x240x155) are checked on top.
"""
from __future__ import annotations

import csv
import os
import time
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ctslib.data import Augmented, describe, open_dataset, split_cases
from ctslib.data.errors import DataError
from ctslib.data.spec import default_data_root, is_sample_root

DATA = default_data_root()
FULL_DATA = not is_sample_root(DATA)
META_KEYS = {"case", "slice", "path"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    assert DATA.is_dir(), f"real data missing at {DATA} (set CTS_DATA_ROOT, or restore data/sample)"
    return str(tmp_path_factory.mktemp("cts-cache"))


def check_item(item, channels: int, size: int) -> None:
    image, mask, meta = item
    assert image.dtype == torch.float32 and image.shape == (channels, size, size)
    assert mask.dtype == torch.float32 and mask.shape == (1, size, size)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(image).all()
    assert set(meta) == META_KEYS and isinstance(meta["case"], str) and isinstance(meta["slice"], int)
    assert os.path.exists(meta["path"])


# ------------------------------------------------------------------------------------------ LGG
def test_lgg_split_keeps_patients(cache):
    rows = list(csv.DictReader(open(DATA / "lgg" / "slices.csv")))
    want = Counter(r["split"] for r in rows)
    patients = {s: len({r["patient"] for r in rows if r["split"] == s}) for s in ("train", "val", "test")}
    assert all(patients.values()), patients                 # every split has patients, on the sample too
    if FULL_DATA:
        assert len(rows) == 1908 and patients == {"train": 36, "val": 7, "test": 7}
    ds = open_dataset("lgg", split="val", image_size=64, cache_dir=cache)
    assert len(ds) == want["val"] and ds.in_channels == 3
    groups = split_cases(ds)
    assert len(groups) == len({r["patient"] for r in rows if r["split"] == "val"})
    for case, idx in groups.items():
        slices = [ds.meta(i)["slice"] for i in idx]
        assert slices == sorted(slices), "items of a patient come in slice order"
    train = open_dataset(f"lgg:{DATA / 'lgg' / 'slices.csv'}", split="train", image_size=64, cache_dir=cache, limit=50)
    assert not set(split_cases(train)) & set(groups), "a patient is in two splits"
    for i in range(0, len(ds), 7 if FULL_DATA else 3):
        check_item(ds[i], 3, 64)


def test_lgg_pixels_and_cache(cache):
    ds = open_dataset("lgg", split="test", image_size=64, cache_dir=cache, limit=40)
    # an LGG RGB slice is (pre-contrast, FLAIR, post-contrast): each channel z-scored per image
    i = next(i for i in range(len(ds)) if ds[i][1].sum() > 0)
    image, mask, meta = ds[i]
    assert image.shape[0] == 3 and abs(float(image[1].mean())) < 0.05
    again = open_dataset("lgg", split="test", image_size=64, cache_dir=cache, limit=40)
    x2, m2, meta2 = again[i]
    assert torch.equal(image, x2) and torch.equal(mask, m2) and meta == meta2
    uncached = open_dataset("lgg?cache=0", split="test", image_size=64, cache_dir=cache, limit=40)
    assert torch.allclose(uncached[i][0], image) and torch.equal(uncached[i][1], mask)


def test_lgg_limit_takes_whole_patients(cache):
    full = open_dataset("lgg", split="train", image_size=32, cache_dir=cache, limit=10**6)
    groups = split_cases(full)
    sizes = [len(v) for v in groups.values()]
    limit = sizes[0] + sizes[1] + 3
    ds = open_dataset("lgg", split="train", image_size=32, cache_dir=cache, limit=limit)
    got = split_cases(ds)
    assert len(ds) == limit and list(got)[:2] == list(groups)[:2]
    assert [len(v) for v in got.values()][:2] == sizes[:2] and len(got) == 3


# ----------------------------------------------------------------------------------------- DDTI
def test_ddti_splits_and_masks(cache):
    rows = list(csv.DictReader(open(DATA / "ddti" / "pairs.csv")))
    counts = Counter(r["split"] for r in rows)
    for split in ("train", "val", "test"):
        ds = open_dataset("ddti", split=split, image_size=32, cache_dir=cache)
        assert len(ds) == counts[split] > 0 and ds.in_channels == 1
    frames = {}
    for r in rows:                                       # split by frame: both crops of a frame together
        assert frames.setdefault(r["frame"], r["split"]) == r["split"], r["frame"]
    ds = open_dataset(f"ddti:{DATA / 'ddti'}", split="all", image_size=64, cache_dir=cache)
    assert len(ds) == len(rows)
    from PIL import Image

    empty = []
    for i in range(len(ds)):
        image, mask, meta = ds[i]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        if mask.sum() == 0:
            empty.append(meta["case"])
    check_item(ds[0], 1, 64)
    native_empty = [r["id"] for r in rows if np.asarray(Image.open(DATA / "ddti" / r["mask"])).max() == 0]
    assert sorted(empty) == sorted(native_empty) and len(empty) >= (6 if FULL_DATA else 1)   # resizing never empties a mask
    stats = describe(ds)
    assert stats["n_items"] == len(rows) and 0.2 < stats["mean_tumour_area"] < 0.45
    if FULL_DATA:
        assert len(rows) == 518 and counts == {"train": 418, "val": 51, "test": 49}


def test_generic_pairs_csv_and_split_values(cache, tmp_path):
    """pairs:CSV with any split values and the ISIC-style folder layout."""
    rows = list(csv.DictReader(open(DATA / "ddti" / "pairs.csv")))[:6]
    csv_path = tmp_path / "mine.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "mask", "split"])
        for k, r in enumerate(rows):
            w.writerow([str(DATA / "ddti" / r["image"]), str(DATA / "ddti" / r["mask"]), "fold1" if k < 4 else "fold2"])
    with pytest.raises(DataError, match="outside the dataset folder"):     # absolute rows need an explicit root
        open_dataset(f"pairs:{csv_path}", split="fold2", image_size=48, cache_dir=cache)
    ds = open_dataset(f"pairs:{csv_path}?root={DATA / 'ddti'}", split="fold2", image_size=48, cache_dir=cache)
    assert len(ds) == 2 and ds.in_channels == 1
    assert ds.meta(0)["case"] == os.path.splitext(os.path.basename(rows[4]["image"]))[0]
    check_item(ds[1], 1, 48)
    # folder layout: images/ + masks/ with ISIC-like names (X.png, X_segmentation.png)
    (tmp_path / "isic" / "images").mkdir(parents=True)
    (tmp_path / "isic" / "masks").mkdir()
    for r in rows:
        stem = os.path.splitext(os.path.basename(r["image"]))[0]
        os.symlink(DATA / "ddti" / r["image"], tmp_path / "isic" / "images" / f"{stem}.png")
        os.symlink(DATA / "ddti" / r["mask"], tmp_path / "isic" / "masks" / f"{stem}_segmentation.png")
    folder = open_dataset(f"pairs:{tmp_path / 'isic'}", split="all", image_size=32, cache_dir=cache)
    assert len(folder) == 6
    seeded = [len(open_dataset(f"pairs:{tmp_path / 'isic'}", split=s, image_size=32, cache_dir=cache)) for s in ("train", "test")]
    assert sum(seeded) <= 6 and seeded[0] >= 3


# ---------------------------------------------------------------------------------- BraTS volumes
def _brats_cases(root) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir())


def test_brats2015_volumes_and_slice_cache(cache):
    import nibabel as nib

    spec = f"brats:{DATA / 'brats2015'}"
    ds = open_dataset(spec, split="all", image_size=64, cache_dir=cache)
    assert ds.in_channels == 2 and ds.layout.label == "OTMultiClass"
    groups = split_cases(ds)
    cases = _brats_cases(DATA / "brats2015")
    assert sorted(groups) == cases and "brats_2013_pat0005_1" in cases
    if FULL_DATA:
        assert cases == ["brats_2013_pat0005_1", "brats_2013_pat0006_1"]
    shapes = {c: nib.load(str(DATA / "brats2015" / c / "OTMultiClass.nii.gz")).shape for c in cases}
    assert all(ds.native_shape(c) == shapes[c] for c in groups)
    if FULL_DATA:
        assert set(shapes.values()) == {(240, 240, 155)}
    for case, idx in groups.items():                     # brain slices only, in slice order
        sl = [ds.meta(i)["slice"] for i in idx]
        assert sl == sorted(sl) and 0 < len(sl) <= shapes[case][2] and len(set(sl)) == len(sl)
        if FULL_DATA:
            assert len(sl) < 155                          # the volume's empty end slices are left out
    for i in (0, len(ds) // 2, len(ds) - 1):
        check_item(ds[i], 2, 64)
    # whole tumour = label > 0: compare the cached mask with the label map on a native slice
    from ctslib.data.readers import read_nifti

    depth = shapes["brats_2013_pat0005_1"][2]
    full = open_dataset(spec + "?slices=all&fit=pad", split="all", image_size=256, cache_dir=cache, limit=depth)
    labels = read_nifti(DATA / "brats2015" / "brats_2013_pat0005_1" / "OTMultiClass.nii.gz")
    k = int(np.argmax((labels > 0).sum(axis=(0, 1))))
    _, mask, meta = full[k]
    assert meta["slice"] == k and torch.equal(mask[0, 8:248, 8:248], torch.from_numpy((labels[:, :, k] > 0).astype(np.float32)))
    # the cache makes reopening free and items identical to the uncached path
    t = time.perf_counter()
    again = open_dataset(spec, split="all", image_size=64, cache_dir=cache)
    assert time.perf_counter() - t < 1.0
    nocache = open_dataset(spec + "?cache=0", split="all", image_size=64, cache_dir=cache, limit=1)
    where = {(again.meta(i)["case"], again.meta(i)["slice"]): i for i in range(len(again))}
    for i in range(len(nocache)):
        j = where[(nocache.meta(i)["case"], nocache.meta(i)["slice"])]
        assert torch.allclose(nocache[i][0], again[j][0], atol=1e-5) and torch.equal(nocache[i][1], again[j][1])
    # per-volume statistics: z-scored brain, background exactly 0
    image = again[len(again) // 2][0]
    assert (image == 0).float().mean() > 0.2 and image.abs().max() < 20


def test_brats_seeded_split_and_split_file(cache, tmp_path):
    root = DATA / "brats2015"
    cases = _brats_cases(root)
    if len(cases) == 1:          # the sample's one case, linked under a second name: a 2-patient set
        root = tmp_path / "two"
        root.mkdir()
        for name in (cases[0], cases[0] + "_twin"):
            (root / name).symlink_to(DATA / "brats2015" / cases[0], target_is_directory=True)
        cases = _brats_cases(root)
    assert len(cases) == 2
    splits = {s: len(split_cases(open_dataset(f"brats:{root}", split=s, image_size=32, cache_dir=cache)))
              for s in ("train", "test")}
    assert splits == {"train": 1, "test": 1}              # 2 cases, seeded 70/10/20 by patient
    split_file = tmp_path / "splits.csv"
    split_file.write_text(f"case,split\n{cases[0]},val\n{cases[1]},train\n")
    val = open_dataset(f"brats:{root}?split_file={split_file}", split="val", image_size=32, cache_dir=cache)
    assert set(split_cases(val)) == {cases[0]}


def test_brats2021_names(cache, tmp_path):
    """The BraTS 2021 file names (BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz) are recognised."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    for case in ("BraTS2021_00000", "BraTS2021_00002"):
        d = tmp_path / "b21" / case
        d.mkdir(parents=True)
        brain = np.zeros((24, 20, 8), bool)
        brain[4:20, 3:17, 1:7] = True
        for mod in ("t1", "t1ce", "t2", "flair"):
            vol = np.where(brain, rng.uniform(100, 900, brain.shape), 0).astype(np.float32)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), d / f"{case}_{mod}.nii.gz")
        seg = np.zeros(brain.shape, np.uint8)
        seg[8:12, 6:10, 3:5] = 4
        seg[12:14, 6:10, 3:5] = 2
        nib.save(nib.Nifti1Image(seg, np.eye(4)), d / f"{case}_seg.nii.gz")
    ds = open_dataset(f"brats:{tmp_path / 'b21'}", split="all", image_size=16, cache_dir=cache)
    assert ds.in_channels == 4 and ds.layout.modalities == ("t1", "t1ce", "t2", "flair") and len(ds) == 12
    check_item(ds[2], 4, 16)
    tumour = open_dataset(f"brats:{tmp_path / 'b21'}?slices=tumour&modalities=flair,t1ce",
                          split="all", image_size=24, cache_dir=cache)
    assert len(tumour) == 4 and tumour.in_channels == 2 and all(tumour[i][1].sum() > 0 for i in range(4))


# ------------------------------------------------------------------------------ BraTS 2-D slices
def test_brats_slice_layout(cache):
    root = DATA / "brats2020_slices"
    folders = {g: sorted(d for d in (root / g).iterdir() if d.is_dir()) for g in ("training", "testing")}
    want = sorted(int(f.name.split("_")[-2]) for d in folders["training"] for f in d.glob("*_seg_*"))
    if FULL_DATA:
        assert want == [80, 81, 82, 83, 84, 85] and len(folders["testing"]) == 2
    n = len(folders["training"])
    ds = open_dataset(f"brats-slices:{root}", split="train", image_size=64, cache_dir=cache)
    assert len(ds) == n == len(want) > 0 and ds.in_channels == 4 and ds.labelled
    assert [ds.meta(i)["slice"] for i in range(n)] == want
    assert sum(float(ds[i][1].sum()) > 0 for i in range(n)) >= 1
    for i in range(n):
        check_item(ds[i], 4, 64)
    with pytest.warns(UserWarning, match="unlabelled"):
        test = open_dataset(f"brats-slices:{root}", split="test", image_size=32, cache_dir=cache)
    n_test = len(folders["testing"])
    assert len(test) == n_test > 0 and not test.labelled and all(test[i][1].sum() == 0 for i in range(n_test))


# ------------------------------------------------------------------------------- loaders, stats
def test_dataloader_collate_and_augment(cache):
    ds = open_dataset("lgg", split="train", image_size=32, cache_dir=cache, augment=True, limit=24)
    assert isinstance(ds, Augmented) and ds.in_channels == 3
    images, masks, meta = next(iter(DataLoader(ds, batch_size=8, shuffle=False, num_workers=2)))
    assert images.shape == (8, 3, 32, 32) and masks.shape == (8, 1, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert set(meta) == META_KEYS and len(meta["case"]) == 8 and meta["slice"].dtype == torch.int64
    with pytest.warns(UserWarning, match="training only"):
        val = open_dataset("lgg", split="val", image_size=32, cache_dir=cache, augment=True, limit=4)
    assert not isinstance(val, Augmented)


def test_describe_lgg(cache):
    ds = open_dataset("lgg", split="val", image_size=32, cache_dir=cache)
    s = describe(ds)
    rows = [r for r in csv.DictReader(open(DATA / "lgg" / "slices.csv")) if r["split"] == "val"]
    assert s["n_items"] == len(ds) == len(rows) and s["n_cases"] == len({r["patient"] for r in rows}) and s["in_channels"] == 3
    listed = sum(r["has_tumour"] == "1" for r in rows) / len(rows)     # at 32 px a few tiny tumours vanish
    assert listed - 0.02 <= s["frac_with_tumour"] <= listed + 1e-9
    if FULL_DATA:
        assert s["n_cases"] == 7
    assert 0.1 < s["frac_with_tumour"] < 0.7 and 0 < s["mean_tumour_area"] < 0.1

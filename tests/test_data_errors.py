"""Bad input -> DataError naming the file and the problem, and nothing half-written."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ctslib.data import DataError, open_dataset, parse_spec
from ctslib.data.spec import default_data_root

DATA = default_data_root()
MODS = ("t1", "t1ce", "t2", "flair")


def make_brats(root: Path, cases=("BraTS2021_00001",), shape=(16, 14, 6)) -> Path:
    """Tiny BraTS 2021-named volumes: a box of 'brain' with a small tumour."""
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, 1:-1] = True
    for case in cases:
        d = root / case
        d.mkdir(parents=True, exist_ok=True)
        for mod in MODS:
            vol = np.where(brain, rng.uniform(10, 100, shape), 0).astype(np.float32)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), d / f"{case}_{mod}.nii.gz")
        seg = np.zeros(shape, np.float32)
        seg[5:8, 5:8, 2:4] = 2
        nib.save(nib.Nifti1Image(seg, np.eye(4)), d / f"{case}_seg.nii.gz")
    return root


def make_pairs(root: Path, n: int = 3, size=(20, 20)) -> Path:
    """A pairs CSV with n grey PNG images and 0/255 masks."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "msk").mkdir(exist_ok=True)
    rows = []
    for k in range(n):
        Image.fromarray((np.random.default_rng(k).random(size) * 255).astype(np.uint8)).save(root / "img" / f"{k}.png")
        m = np.zeros(size, np.uint8)
        m[5:10, 5:10] = 255
        Image.fromarray(m).save(root / "msk" / f"{k}.png")
        rows.append([f"img/{k}.png", f"msk/{k}.png", "train", f"case{k}"])
    with open(root / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "mask", "split", "case"])
        w.writerows(rows)
    return root / "pairs.csv"


def cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def open_brats(root: Path, cache: Path, **kw):
    return open_dataset(f"brats:{root}", split="all", image_size=8, cache_dir=str(cache), **kw)


# ------------------------------------------------------------------------- unreadable / corrupt
def test_corrupt_nifti(tmp_path):
    root = make_brats(tmp_path / "b")
    bad = root / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(DataError, match=r"BraTS2021_00001_t2\.nii\.gz: cannot read NIfTI"):
        open_brats(root, tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == []                    # nothing half-written


def test_truncated_nifti(tmp_path):
    root = make_brats(tmp_path / "b", shape=(40, 40, 20))
    f = root / "BraTS2021_00001" / "BraTS2021_00001_flair.nii.gz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"_flair\.nii\.gz: cannot read NIfTI"):
        open_brats(root, tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == []


def test_corrupt_and_missing_png(tmp_path):
    csv_path = make_pairs(tmp_path / "p")
    good = (tmp_path / "p" / "img" / "1.png").read_bytes()
    (tmp_path / "p" / "img" / "1.png").write_bytes(good[: len(good) // 3])
    cache = tmp_path / "cache"
    ds = open_dataset(f"pairs:{csv_path}", split="train", image_size=8, cache_dir=str(cache))
    ds[0]
    with pytest.raises(DataError, match=r"img/1\.png: cannot decode image"):
        ds[1]
    assert len(cache_files(cache)) == 1                              # only the good item was cached
    (tmp_path / "p" / "img" / "2.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"img/2\.png: cannot decode image"):
        ds[2]
    (tmp_path / "p" / "msk" / "0.png").unlink()
    with pytest.raises(DataError, match=r"msk/0\.png: file not found \(listed in .*pairs\.csv\)"):
        open_dataset(f"pairs:{csv_path}", split="train", image_size=8, cache_dir=str(cache))


# --------------------------------------------------------------------------------- shape mismatch
def test_png_shape_mismatch(tmp_path):
    csv_path = make_pairs(tmp_path / "p")
    Image.fromarray(np.zeros((20, 18), np.uint8)).save(tmp_path / "p" / "msk" / "0.png")
    ds = open_dataset(f"pairs:{csv_path}", split="train", image_size=8, cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"msk/0\.png: mask shape \(20, 18\) does not match image .*0\.png shape \(20, 20\)"):
        ds[0]
    assert cache_files(tmp_path / "c") == []


def test_nifti_shape_mismatch(tmp_path):
    root = make_brats(tmp_path / "b")
    nib.save(nib.Nifti1Image(np.zeros((16, 14, 5), np.float32), np.eye(4)), root / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz")
    with pytest.raises(DataError, match=r"_seg\.nii\.gz: label shape \(16, 14, 5\) does not match image"):
        open_brats(root, tmp_path / "c")
    nib.save(nib.Nifti1Image(np.zeros((16, 14, 5), np.float32), np.eye(4)), root / "BraTS2021_00001" / "BraTS2021_00001_t1ce.nii.gz")
    with pytest.raises(DataError, match=r"_t1ce\.nii\.gz: shape \(16, 14, 5\) does not match"):
        open_brats(root, tmp_path / "c")


# ------------------------------------------------------------------------------ missing modality
def test_missing_modality(tmp_path):
    root = make_brats(tmp_path / "b", cases=("BraTS2021_00001", "BraTS2021_00002"))
    (root / "BraTS2021_00002" / "BraTS2021_00002_t2.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS2021_00002: missing modality 't2'"):
        open_brats(root, tmp_path / "c")
    (root / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz").unlink()
    (root / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz").unlink()
    with pytest.raises(DataError, match=r"unrecognised volume layout"):
        open_brats(root, tmp_path / "c")


def test_missing_modality_in_slice_layout(tmp_path):
    src = DATA / "brats2020_slices" / "training"
    dst = tmp_path / "s" / "training"
    shutil.copytree(src, dst)
    next(dst.glob("000003/*_flair_*.nii.gz")).unlink()
    with pytest.raises(DataError, match=r"000003: missing modality flair"):
        open_dataset(f"brats-slices:{tmp_path / 's'}", split="train", image_size=8, cache_dir=str(tmp_path / "c"))


# ----------------------------------------------------------------------------------- NaN or inf
def test_nan_and_inf_intensities(tmp_path):
    root = make_brats(tmp_path / "b")
    f = root / "BraTS2021_00001" / "BraTS2021_00001_t1.nii.gz"
    vol = np.asarray(nib.load(f).dataobj).copy()
    vol[3, 3, 3] = np.nan
    vol[4, 4, 4] = np.inf
    nib.save(nib.Nifti1Image(vol, np.eye(4)), f)
    with pytest.raises(DataError, match=r"_t1\.nii\.gz: contains non-finite intensities \(1 NaN, 1 inf\)"):
        open_brats(root, tmp_path / "c")
    assert cache_files(tmp_path / "c") == []
    # the 2-D slice layout too
    dst = tmp_path / "s" / "training"
    shutil.copytree(DATA / "brats2020_slices" / "training", dst)
    sl = next(dst.glob("000002/*_t2_*.nii.gz"))
    img = nib.load(sl)
    arr = np.asarray(img.dataobj).copy()
    arr[0, 0] = np.inf
    nib.save(nib.Nifti1Image(arr, img.affine), sl)
    ds = open_dataset(f"brats-slices:{tmp_path / 's'}", split="train", image_size=8, cache_dir=str(tmp_path / "c2"))
    bad = next(i for i in range(len(ds)) if ds.meta(i)["path"].endswith("000002"))
    with pytest.raises(DataError, match=r"_t2_\d+_w\.nii\.gz: contains non-finite intensities \(0 NaN, 1 inf\)"):
        ds[bad]


# ------------------------------------------------------------------- non-binary / out-of-range mask
def test_non_binary_png_mask(tmp_path):
    csv_path = make_pairs(tmp_path / "p", n=1)
    m = np.zeros((20, 20), np.uint8)
    m[2:6, 2:6], m[8:12, 8:12] = 100, 255
    Image.fromarray(m).save(tmp_path / "p" / "msk" / "0.png")
    ds = open_dataset(f"pairs:{csv_path}", split="train", image_size=20, cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"msk/0\.png: non-binary mask values \[0, 100, 255\].*label > 0 is foreground"):
        ds[0]
    labels = open_dataset(f"pairs:{csv_path}?mask=labels", split="train", image_size=20, cache_dir=str(tmp_path / "c"))
    assert labels[0][1].sum() == 32                                  # label map: > 0 is foreground
    thresh = open_dataset(f"pairs:{csv_path}?mask=threshold", split="train", image_size=20, cache_dir=str(tmp_path / "c"))
    assert thresh[0][1].sum() == 16                                  # anti-aliased: > 127.5, so 100 is background
    m01 = (m > 0).astype(np.uint8)                                   # {0,1} masks are binary too
    Image.fromarray(m01).save(tmp_path / "p" / "msk" / "0.png")
    assert set(ds[0][1].unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("value, problem", [(-1.0, "negative values"), (1.5, "non-integer values")])
def test_out_of_range_labels(tmp_path, value, problem):
    root = make_brats(tmp_path / "b")
    f = root / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    seg = np.asarray(nib.load(f).dataobj).copy()
    seg[6, 6, 3] = value
    nib.save(nib.Nifti1Image(seg, np.eye(4)), f)
    with pytest.raises(DataError, match=rf"_seg\.nii\.gz: label map has {problem}.*> 0 is foreground"):
        open_brats(root, tmp_path / "c")
    assert cache_files(tmp_path / "c") == []


# ----------------------------------------------------------------------------- empty dataset/split
def test_empty_dataset_and_split(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: empty dataset: no subject folders"):
        open_dataset(f"brats:{tmp_path / 'empty'}", split="all")
    with pytest.raises(DataError, match=r"empty dataset: no image/mask pairs"):
        open_dataset(f"pairs:{tmp_path / 'empty'}", split="all")
    (tmp_path / "header.csv").write_text("image,mask,split\n")
    with pytest.raises(DataError, match=r"header\.csv: empty dataset: the CSV has no rows"):
        open_dataset(f"pairs:{tmp_path / 'header.csv'}")
    with pytest.raises(DataError, match=r"slices\.csv: empty split 'nope'; the 'split' column holds test, train, val"):
        open_dataset("lgg", split="nope", cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"empty split 'val' in the seeded 70/10/20 case split"):
        open_dataset(f"brats:{DATA / 'brats2015'}", split="val", cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"empty split 'val': no folder for it"):
        open_dataset(f"brats-slices:{DATA / 'brats2020_slices'}", split="val", cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"empty dataset requested \(limit=0\)"):
        open_dataset("phantom", limit=0)
    csv_path = make_pairs(tmp_path / "p", n=1)
    with pytest.raises(DataError, match=r"no 'fold' column, so split 'train' cannot be selected"):
        open_dataset(f"pairs:{csv_path}?split_col=fold", split="train")
    with pytest.raises(DataError, match=r"not found"):
        open_dataset(f"lgg:{tmp_path / 'nowhere'}")


# ------------------------------------------------------------------------------------ unknown spec
@pytest.mark.parametrize("spec, message", [
    ("nifti:/data", r"unknown kind 'nifti'"),
    ("", r"empty"),
    ("/data/lgg", r"unknown kind"),
    ("phantom:many", r"phantom count 'many' is not an integer"),
    ("phantom:-3", r"phantom count must be > 0"),
    ("brats", r"brats needs a path"),
    ("lgg?colour=1", r"unknown option 'colour' for lgg"),
    ("lgg?cache=maybe", r"option cache='maybe' is not a valid bool"),
    ("phantom?size=3", r"unknown option\(s\) size for phantom"),
    ("ddti?mask", r"option 'mask' is not key=value"),
])
def test_unknown_or_malformed_spec(spec, message):
    with pytest.raises(DataError, match=message):
        open_dataset(spec)
    assert issubclass(DataError, ValueError)


def test_parse_spec_forms():
    assert parse_spec("phantom").count is None and parse_spec("phantom:256").count == 256
    assert parse_spec("PHANTOM-US:8").kind == "phantom-us"
    s = parse_spec("brats:/d/b21?slices=all&norm=minmax")
    assert (s.kind, s.path, s.options) == ("brats", "/d/b21", {"slices": "all", "norm": "minmax"})
    assert parse_spec("lgg").path == str(DATA / "lgg") and parse_spec("ddti:/x/y").path == "/x/y"
    assert parse_spec("pairs:C:/data/isic").path == "C:/data/isic"


def test_the_kind_registry_feeds_the_grammar_and_the_sample():
    """Every registered kind is written in spec.py's docstring table as `usage` gives it, and every
    data-root folder of the registry exists in the in-repo sample (factory.py asserts the openers itself)."""
    import ctslib.data.spec as spec_module
    from ctslib.data.spec import DATASETS, ROOT_FOLDERS, sample_data_root

    for kind in DATASETS.values():
        assert f"``{kind.usage}``" in spec_module.__doc__, kind.usage
    missing = [d for d in ROOT_FOLDERS if not (sample_data_root() / d).is_dir()]
    assert not missing, f"registry root folders absent from data/sample: {missing}"


def test_default_data_root_is_cts_data_root_else_the_in_repo_sample(monkeypatch, tmp_path):
    """A fresh clone needs nothing outside the repository: without CTS_DATA_ROOT the data root is data/sample."""
    from ctslib.data.spec import default_data_root, is_sample_root, sample_data_root
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("CTS_DATA_ROOT", raising=False)
    assert default_data_root() == sample_data_root() == repo / "data" / "sample"
    assert parse_spec("ddti").path == str(repo / "data" / "sample" / "ddti") and is_sample_root(default_data_root())
    assert (sample_data_root() / "lgg" / "slices.csv").is_file() and (sample_data_root() / "ddti" / "pairs.csv").is_file()
    monkeypatch.setenv("CTS_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path and parse_spec("lgg").path == str(tmp_path / "lgg")
    assert not is_sample_root(tmp_path)
    monkeypatch.setenv("CTS_DATA_ROOT", "")                  # set but empty: as if unset
    assert default_data_root() == sample_data_root()


def test_pairs_root_through_a_symbolic_link(tmp_path):
    """Absolute CSV rows written through a linked data folder pass with the folder's real path as root, and the
    other way round (CI once reached its data through a link); a row outside both is still refused."""
    real = Path(__file__).resolve().parents[1] / "data" / "sample" / "ddti"
    link = tmp_path / "linked_ddti"
    link.symlink_to(real, target_is_directory=True)
    rows = list(csv.DictReader(open(real / "pairs.csv")))[:3]
    for written, root in ((link, real), (real, link)):
        csv_path = tmp_path / f"rows_{written.name}.csv"
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "mask"])
            w.writerows([str(written / r["image"]), str(written / r["mask"])] for r in rows)
        assert len(open_dataset(f"pairs:{csv_path}?root={root}", split="all", image_size=32)) == 3
        with pytest.raises(DataError, match="outside the dataset folder"):
            open_dataset(f"pairs:{csv_path}?root={root / 'images'}", split="all", image_size=32)

"""Cut the small real-data sample in ``data/sample/`` from the full data sets (issue #12).

Run from the repository root, with ``$CTS_DATA_ROOT`` the folder holding the full ``lgg/``,
``ddti/``, ``brats2015/`` and ``brats2020_slices/`` sets (the layout described in its README):

    python data/make_sample.py --source "$CTS_DATA_ROOT" --dest data/sample --force

The output is deterministic: the same source gives byte-identical files (PNG and NIfTI writers
without timestamps, fixed selections below, no randomness). What is cut:

- ``lgg/``: 8 patients (4 train, 2 val, 2 test, each keeping its split of the source), 8
  consecutive axial slices each, starting 3 slices before the patient's first tumour slice (so
  every patient has empty and tumour slices); 256x256 RGB -> 128x128 (area average, ``PIL.Image.BOX``),
  masks nearest-neighbour (still 0/255). ``slices.csv`` has the source's columns and row order;
  ``has_tumour`` is recomputed from the reduced mask.
- ``ddti/``: 64 nodule crops spanning train/val/test (whole frames, so both crops of a two-nodule
  frame stay together and in the source's split): a few fixed frames used by the tests, two
  frames holding an empty-mask crop, and evenly spaced frames of each split; 300x300 -> 128x128
  (area / nearest as above). ``pairs.csv`` has the source's columns and row order.
- ``brats2015/``: one case (``brats_2013_pat0005_1``), the four NIfTI files cut to the 16 axial
  slices centred on the slice with the largest tumour area, at full 240x240 resolution and
  original values and data types; the affine's origin (qform and sform) moves by the cut-off
  slices so that every kept voxel keeps its world position (spacing, orientation and the
  qform/sform codes are unchanged).
- ``brats2020_slices/``: 3 of the 6 labelled training slices and 1 of the 2 unlabelled testing
  slices of the format fixture, copied byte for byte.

Each folder gets its licence/attribution text, and ``README.md`` + ``manifest.json`` record the
provenance and the counts. Needs numpy, Pillow and nibabel (the package's own dependencies).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

SIZE = 128
LGG_PATIENTS = {
    "train": ["TCGA_CS_4941_19960909", "TCGA_CS_4943_20000902", "TCGA_DU_5851_19950428", "TCGA_HT_7686_19950629"],
    "val": ["TCGA_CS_4944_20010208", "TCGA_DU_5871_19941206"],
    "test": ["TCGA_HT_7692_19960724", "TCGA_DU_7008_19830723"],
}
LGG_SLICES, LGG_BEFORE = 8, 3
# Frames the tests name (tests/test_predict.py, tests/test_download.py), then two frames whose
# second crop has an empty mask (the source holds a few such crops).
DDTI_FIXED = ["101_1", "104_1", "27_1", "46_1", "4_1", "12_1", "358_1", "384_1"]
DDTI_QUOTA = {"train": 44, "val": 10, "test": 10}
BRATS_CASE, BRATS_SLAB = "brats_2013_pat0005_1", 16
BRATS_FILES = ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz", "brainmask.nii.gz", "OTMultiClass.nii.gz")
SLICE_FOLDERS = {"training": ["000001", "000002", "000003"], "testing": ["000246"]}
SPLITS = ("train", "val", "test")

LGG_LICENSE = """\
LGG Segmentation Dataset -- licence and attribution
===================================================

Source: "LGG Segmentation Dataset" (Kaggle: mateuszbuda/lgg-mri-segmentation), brain MR images
of 110 lower-grade glioma patients from The Cancer Imaging Archive (TCIA, TCGA-LGG collection)
with manual FLAIR abnormality masks.

Licence: Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (CC BY-NC-SA 4.0),
https://creativecommons.org/licenses/by-nc-sa/4.0/ (full legal code:
https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode). Non-commercial research use only;
adaptations must be shared under the same licence.

Attribution (please cite):
  Buda M, Saha A, Mazurowski MA. Association of genomic subtypes of lower-grade gliomas with shape
  features automatically extracted by a deep learning algorithm. Computers in Biology and Medicine
  109 (2019) 218-225. https://doi.org/10.1016/j.compbiomed.2019.05.002
  Mazurowski MA, Clark K, Czarnek NM, Shamsesfandabadi P, Peters KB, Saha A. Radiogenomics of
  lower-grade glioma: algorithmically-assessed tumor shape is associated with tumor genomic
  subtypes and patient outcomes in a multi-institutional study with The Cancer Genome Atlas data.
  Journal of Neuro-Oncology 133(1) (2017) 27-35.
  The Cancer Imaging Archive (TCIA), TCGA-LGG collection.

Changes made here: a subset of patients and slices was taken, the images were reduced from
256x256 to 128x128 pixels (area average) and the masks to 128x128 (nearest neighbour), and the
has_tumour column was recomputed from the reduced masks (data/make_sample.py). These changes are
not endorsed by the original authors.
"""

DDTI_LICENSE = """\
DDTI (Digital Database Thyroid Image) -- terms and attribution
==============================================================

Source: the Digital Database Thyroid Image (DDTI), thyroid ultrasound images with nodule
annotations by expert radiologists, Universidad Nacional de Colombia / IM Diagnostico Medico,
published as an open-access research database.
The nodule-centred 300x300 crops follow the public DDTI_preprocessing scripts
(https://github.com/xuao575/DDTI_preprocessing).

Terms: open-access database for research and teaching; non-commercial research use; cite the
publication below in any work that uses the data.

Attribution (please cite):
  Pedraza L, Vargas C, Narvaez F, Duran O, Munoz E, Romero E. An open access thyroid ultrasound
  image database. Proc. SPIE 9287, 10th International Symposium on Medical Information Processing
  and Analysis, 92870W (2015). https://doi.org/10.1117/12.2073532

Changes made here: a subset of the crops was taken and the crops were reduced from 300x300 to
128x128 pixels (images: area average; masks: nearest neighbour) (data/make_sample.py).
"""

BRATS2020_NOTICE = """\
BraTS 2020 slices -- terms and attribution
==========================================

Source: Multimodal Brain Tumor Segmentation Challenge 2020 (BraTS 2020, CBICA, University of
Pennsylvania) training data, as 2-D slices in the layout of the MedSegDiff / CTS BraTS slice
loaders (a format fixture). Research use only, under the BraTS data terms
(https://www.med.upenn.edu/cbica/brats2020/data.html): any publication using the data must cite:

  Menze BH, Jakab A, Bauer S, et al. The Multimodal Brain Tumor Image Segmentation Benchmark
  (BRATS). IEEE Transactions on Medical Imaging 34(10) (2015) 1993-2024.
  Bakas S, Akbari H, Sotiras A, et al. Advancing The Cancer Genome Atlas glioma MRI collections
  with expert segmentation labels and radiomic features. Nature Scientific Data 4 (2017) 170117.
  Bakas S, Reyes M, Jakab A, et al. Identifying the best machine learning algorithms for brain
  tumor segmentation, progression assessment, and overall survival prediction in the BRATS
  challenge. arXiv:1811.02629 (2018).

Changes made here: 4 of the fixture's 8 slice folders were copied unchanged (data/make_sample.py).
"""


def _natural(s: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _read_grouped(path: Path, key: str) -> tuple[list[str], list[dict], "OrderedDict[str, list[dict]]"]:
    """(field names, rows, rows grouped by `key` in first-seen order) of a source CSV."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames), list(reader)
    groups: "OrderedDict[str, list[dict]]" = OrderedDict()
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return fields, rows, groups


def _write_csv(path: Path, fieldnames: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:          # csv's default \r\n line ends, as the source CSVs
        w = csv.DictWriter(f, fieldnames=fieldnames)
        w.writeheader()
        w.writerows(rows)


def _reduce_pair(src_image: Path, src_mask: Path, dst_image: Path, dst_mask: Path) -> bool:
    """Write the 128 px image (area average) and mask (nearest, 0/255); True if the mask has foreground."""
    from PIL import Image

    with Image.open(src_image) as im, Image.open(src_mask) as mk:
        if im.size != mk.size or im.size[0] != im.size[1]:
            raise SystemExit(f"{src_image}: expected a square image with a same-sized mask, got {im.size} / {mk.size}")
        image = im.convert("RGB" if im.mode in ("RGB", "RGBA", "P") else "L").resize((SIZE, SIZE), Image.BOX)
        mask = np.asarray(mk.convert("L").resize((SIZE, SIZE), Image.NEAREST))
    if not set(np.unique(mask).tolist()) <= {0, 255}:
        raise SystemExit(f"{src_mask}: mask values {np.unique(mask)} are not 0/255")
    dst_image.parent.mkdir(parents=True, exist_ok=True)
    dst_mask.parent.mkdir(parents=True, exist_ok=True)
    image.save(dst_image, optimize=True)
    Image.fromarray(mask).save(dst_mask, optimize=True)
    return bool(mask.any())


# ------------------------------------------------------------------------------------------- LGG
def make_lgg(src: Path, dst: Path) -> dict:
    fields, rows, by_patient = _read_grouped(src / "slices.csv", "patient")
    chosen: dict[str, set[int]] = {}
    for split, patients in LGG_PATIENTS.items():
        for p in patients:
            prs = sorted(by_patient[p], key=lambda r: int(r["slice"]))
            if {r["split"] for r in prs} != {split}:
                raise SystemExit(f"LGG patient {p} is not in split {split} of {src / 'slices.csv'}")
            first = next(k for k, r in enumerate(prs) if r["has_tumour"] == "1")
            start = min(max(0, first - LGG_BEFORE), len(prs) - LGG_SLICES)
            chosen[p] = {int(r["slice"]) for r in prs[start:start + LGG_SLICES]}
    out = []
    for r in rows:                                      # the source's row order
        if int(r["slice"]) in chosen.get(r["patient"], ()):
            tumour = _reduce_pair(src / r["image"], src / r["mask"], dst / r["image"], dst / r["mask"])
            out.append({**r, "has_tumour": str(int(tumour))})
    _write_csv(dst / "slices.csv", fields, out)
    (dst / "LICENSE.txt").write_text(LGG_LICENSE)
    return {
        "patients": {s: len(p) for s, p in LGG_PATIENTS.items()},
        "slices": {s: sum(r["split"] == s for r in out) for s in SPLITS},
        "tumour_slices": {s: sum(r["split"] == s and r["has_tumour"] == "1" for r in out) for s in SPLITS},
        "size": SIZE,
    }


# ------------------------------------------------------------------------------------------ DDTI
def make_ddti(src: Path, dst: Path) -> dict:
    fields, rows, frames = _read_grouped(src / "pairs.csv", "frame")
    split_of = {fr: rs[0]["split"] for fr, rs in frames.items()}
    chosen = list(DDTI_FIXED)
    for split, quota in DDTI_QUOTA.items():
        have = sum(len(frames[f]) for f in chosen if split_of[f] == split)
        pool = [f for f in frames if split_of[f] == split and f not in chosen]
        # every n-th frame of the split (source order), whole frames, until the quota is met
        stride = max(1, len(pool) // max(1, quota - have))
        for frame in pool[::stride] + [f for k, f in enumerate(pool) if k % stride]:
            if have >= quota:
                break
            chosen.append(frame)
            have += len(frames[frame])
    keep = set(chosen)
    out = []
    for r in rows:
        if r["frame"] in keep:
            _reduce_pair(src / r["image"], src / r["mask"], dst / r["image"], dst / r["mask"])
            out.append(r)
    _write_csv(dst / "pairs.csv", fields, out)
    (dst / "LICENSE.txt").write_text(DDTI_LICENSE)
    from PIL import Image

    empty = [r["id"] for r in out if not np.asarray(Image.open(dst / r["mask"])).any()]
    return {
        "crops": {s: sum(r["split"] == s for r in out) for s in SPLITS},
        "empty_masks": empty,
        "frames": {s: len({r["frame"] for r in out if r["split"] == s}) for s in SPLITS},
        "size": SIZE,
    }


# ------------------------------------------------------------------------------------ BraTS 2015
def make_brats2015(src: Path, dst: Path) -> dict:
    import nibabel as nib

    case_src, case_dst = src / BRATS_CASE, dst / BRATS_CASE
    case_dst.mkdir(parents=True, exist_ok=True)
    labels = nib.load(str(case_src / "OTMultiClass.nii.gz"))
    area = (np.asarray(labels.dataobj) > 0).sum(axis=(0, 1))
    depth = labels.shape[2]
    peak = int(np.argmax(area))
    z0 = min(max(0, peak - BRATS_SLAB // 2), depth - BRATS_SLAB)
    for name in BRATS_FILES:
        img = nib.load(str(case_src / name))
        if img.shape != labels.shape:
            raise SystemExit(f"{case_src / name}: shape {img.shape} differs from the label map's {labels.shape}")
        # the kept voxels keep their world coordinates: voxel (i, j, k) of the slab is (i, j, k + z0)
        # of the source, so the origin moves by z0 slices; both header forms keep their codes
        shift = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, z0], [0, 0, 0, 1]], float)
        sub = nib.Nifti1Image(np.asarray(img.dataobj)[:, :, z0:z0 + BRATS_SLAB], img.affine @ shift, img.header.copy())
        sub.set_qform(img.get_qform() @ shift, int(img.header["qform_code"]))
        sub.set_sform(img.get_sform() @ shift, int(img.header["sform_code"]))
        np.testing.assert_allclose(sub.affine, img.affine @ shift)
        nib.save(sub, str(case_dst / name))
        back = nib.load(str(case_dst / name))
        np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(img.dataobj)[:, :, z0:z0 + BRATS_SLAB])
        np.testing.assert_allclose(back.affine, img.affine @ shift)
        assert back.header.get_zooms() == img.header.get_zooms() and back.get_data_dtype() == img.get_data_dtype()
        assert int(back.header["qform_code"]) == int(img.header["qform_code"])
        assert int(back.header["sform_code"]) == int(img.header["sform_code"])
    for lic in sorted(case_src.glob("Licen[cs]e*")):
        shutil.copyfile(lic, case_dst / lic.name)
    return {"cases": 1, "case": BRATS_CASE, "source_slices": [z0, z0 + BRATS_SLAB], "shape": list(labels.shape[:2]) + [BRATS_SLAB],
            "tumour_slices": int((area[z0:z0 + BRATS_SLAB] > 0).sum())}


# ------------------------------------------------------------------------------ BraTS 2020 slices
def make_brats2020_slices(src: Path, dst: Path) -> dict:
    counts = {}
    for group, folders in SLICE_FOLDERS.items():
        for folder in folders:
            (dst / group / folder).mkdir(parents=True, exist_ok=True)
            for f in sorted((src / group / folder).iterdir()):
                shutil.copyfile(f, dst / group / folder / f.name)
        counts[group] = len(folders)
    (dst / "NOTICE.txt").write_text(BRATS2020_NOTICE)
    return {"slices": counts}


README = """\
# Real-data sample (fresh clones, unit tests, tutorials)

A few MB of real, expert-annotated medical images cut from the full data sets, so that a fresh
clone of this repository runs its data tests, the CLI examples and the notebooks without any
download. `ctslib.data.default_data_root()` returns this folder when `CTS_DATA_ROOT` is not set:

```python
from ctslib.data import open_dataset
open_dataset("lgg:data/sample/lgg", split="train", image_size=64)   # or just "lgg"
open_dataset("ddti:data/sample/ddti", split="test")
open_dataset("brats:data/sample/brats2015", split="all")
open_dataset("brats-slices:data/sample/brats2020_slices", split="train")
```

It is a smoke-test and tutorial sample, far too small to train or report on: results on it mean
nothing. For real runs get the full sets (`./data_download.sh`) and point `CTS_DATA_ROOT` at them.

## Contents

| folder | cut from | what is here | split |
|---|---|---|---|
| `lgg/` | LGG Segmentation Dataset (TCGA-LGG brain MRI, FLAIR abnormality) | {lgg_patients} patients, {lgg_slices} axial slices ({lgg_tumour} with tumour), 128x128 RGB PNG (pre-contrast, FLAIR, post-contrast) + 0/255 mask PNG; `slices.csv` (patient, slice, image, mask, has_tumour, split) | by patient, as in the source: {lgg_split} |
| `ddti/` | DDTI thyroid ultrasound, nodule-centred crops | {ddti_crops} crops of {ddti_frames} frames, 128x128 grey PNG + 0/255 mask PNG ({ddti_empty} crops have an empty mask); `pairs.csv` (id, frame, image, mask, split) | by frame, as in the source: {ddti_split} crops |
| `brats2015/` | BraTS 2015 training data (DeepMedic's normalised copy) | case `{brats_case}`: `Flair_subtrMeanDivStd`, `T1c_subtrMeanDivStd`, `brainmask`, `OTMultiClass` (labels 0-4; whole tumour = label > 0), 240x240x{brats_depth} NIfTI, axial slices {brats_lo}-{brats_hi} of the 155 (around the largest tumour cross-section) | none |
| `brats2020_slices/` | BraTS 2020, the MedSegDiff/CTS 2-D slice layout | `training/` {b20_train} labelled slices, `testing/` {b20_test} unlabelled slice; 240x240 NIfTI, one file per modality | none (format fixture) |

`manifest.json` lists the same counts (it also marks this folder as the sample; the tests check
full-set facts only on the full sets).

## How it was made

```
{command}
```

(`$CTS_DATA_ROOT` = the full sets.) `data/make_sample.py` documents every choice: which patients,
slices, crops and case; images reduced by area averaging and masks by nearest neighbour (masks
stay 0/255, `has_tumour` recomputed on the reduced masks); BraTS volumes cut along the axial axis
only, with the NIfTI affine's origin moved so that every voxel keeps its world position (voxel
size, orientation and header codes unchanged); BraTS 2020 slices copied unchanged. The script is
deterministic: rerunning it on the same source gives identical files.

## Terms and citations

Non-commercial research and teaching use only. Each folder holds its licence/terms text:

- `lgg/LICENSE.txt`: CC BY-NC-SA 4.0. Cite Buda, Saha, Mazurowski, Computers in Biology and
  Medicine 109 (2019) 218-225 (and TCIA, TCGA-LGG).
- `ddti/LICENSE.txt`: DDTI, an open-access research database. Cite Pedraza et al., Proc. SPIE 9287,
  92870W (2015).
- `brats2015/{brats_case}/License_CC_BY_NC_SA_3.0.txt` (copied from the source): CC BY-NC-SA 3.0.
  Cite Menze et al., IEEE TMI 34(10) 2015.
- `brats2020_slices/NOTICE.txt`: BraTS 2020 research terms. Cite Menze et al. 2015, Bakas et al.
  2017 (Scientific Data) and Bakas et al. 2018 (arXiv:1811.02629).

The modified files are shared under the same terms as their sources.
"""

COMMAND = 'python data/make_sample.py --source "$CTS_DATA_ROOT" --dest data/sample --force'
PARTS = ("lgg", "ddti", "brats2015", "brats2020_slices")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, required=True, help="folder with the full lgg/, ddti/, brats2015/, brats2020_slices/ sets")
    ap.add_argument("--dest", type=Path, default=Path("data/sample"), help="output folder (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="replace the sample's folders if DEST already holds them")
    args = ap.parse_args(argv)
    src, dst = args.source.expanduser(), args.dest
    missing = [p for p in PARTS if not (src / p).is_dir()]
    if missing:
        ap.error(f"{src}: missing {', '.join(missing)} (expected the full data sets' layout)")
    if dst.exists() and any(dst.iterdir()):
        if not args.force:
            ap.error(f"{dst} is not empty; pass --force to rebuild the sample in place")
        for p in PARTS:
            shutil.rmtree(dst / p, ignore_errors=True)
        for f in ("README.md", "manifest.json"):
            (dst / f).unlink(missing_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    manifest = {
        "sample": True,
        "made_by": COMMAND,
        "lgg": make_lgg(src / "lgg", dst / "lgg"),
        "ddti": make_ddti(src / "ddti", dst / "ddti"),
        "brats2015": make_brats2015(src / "brats2015", dst / "brats2015"),
        "brats2020_slices": make_brats2020_slices(src / "brats2020_slices", dst / "brats2020_slices"),
    }
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    lgg, ddti, b15, b20 = manifest["lgg"], manifest["ddti"], manifest["brats2015"], manifest["brats2020_slices"]
    fmt = lambda d: " / ".join(f"{d[s]} {s}" for s in SPLITS)  # noqa: E731
    (dst / "README.md").write_text(README.format(
        lgg_patients=sum(lgg["patients"].values()), lgg_slices=sum(lgg["slices"].values()),
        lgg_tumour=sum(lgg["tumour_slices"].values()),
        lgg_split=f"{fmt(lgg['patients'])} patients ({fmt(lgg['slices'])} slices)",
        ddti_crops=sum(ddti["crops"].values()), ddti_empty=len(ddti["empty_masks"]), ddti_frames=sum(ddti["frames"].values()), ddti_split=fmt(ddti["crops"]),
        brats_case=b15["case"], brats_depth=b15["shape"][2], brats_lo=b15["source_slices"][0],
        brats_hi=b15["source_slices"][1] - 1, b20_train=b20["slices"]["training"], b20_test=b20["slices"]["testing"],
        command=COMMAND,
    ))
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

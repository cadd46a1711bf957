"""Convert raw public downloads into the CSV layouts that ``ctslib.data`` reads.

Run as a plain script (numpy + Pillow only, no package import), as data_download.sh does:

    python ctslib/data/convert.py lgg  RAW_DIR OUT_DIR [--seed 0]
    python ctslib/data/convert.py ddti RAW_DIR OUT_DIR [--seed 0]

- ``lgg``: the Kaggle "mateuszbuda/lgg-mri-segmentation" tree (``kaggle_3m/TCGA_*/TCGA_*_<n>.tif``
  and ``..._<n>_mask.tif``) -> ``OUT/<patient>/<NNN>_image.png``, ``<NNN>_mask.png`` (0/255) and
  ``OUT/slices.csv`` (patient, slice, image, mask, has_tumour, split), split by patient.
- ``ddti``: either the public crops of github.com/xuao575/DDTI_preprocessing (``cropped/*.png`` +
  ``mask/*.gif``) or the raw Kaggle "dasmehdixtr/ddti-thyroid-ultrasound-images" set (``<case>.xml``
  with nodule polygons + ``<case>_<image>.jpg``), cropped like DDTI_preprocessing (polygon box + 30
  px, resized to 300x300; its dark-border trimming is not repeated) -> ``OUT/images/<id>.png``,
  ``OUT/masks/<id>.png`` (0/255) and ``OUT/pairs.csv`` (id, frame, image, mask, split), split by frame.
Splits are seeded and by patient/frame; they are not the fixed splits of the project's full data sets.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LGG_FRACTIONS = (("train", 0.72), ("val", 0.14), ("test", 0.14))
DDTI_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def assign_splits(groups: list[str], seed: int, fractions) -> dict[str, str]:
    """Seeded group-level split: sorted groups, shuffled, cut by fractions."""
    unique = sorted(set(groups))
    random.Random(seed).shuffle(unique)
    out, start = {}, 0
    for k, (name, frac) in enumerate(fractions):
        stop = len(unique) if k == len(fractions) - 1 else start + int(round(frac * len(unique)))
        out.update({g: name for g in unique[start:stop]})
        start = stop
    return out


def _binary_png(mask: np.ndarray, path: Path) -> bool:
    """Save mask > 0 as a 0/255 8-bit PNG; return whether it has foreground."""
    m = mask.max(axis=2) if mask.ndim == 3 else mask
    fg = m > 0
    Image.fromarray((fg * 255).astype(np.uint8)).save(path)
    return bool(fg.any())


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ------------------------------------------------------------------------------------------ LGG
def convert_lgg(raw: Path, out: Path, seed: int = 0) -> int:
    """Kaggle kaggle_3m tree -> slices.csv layout; returns the number of slices."""
    pat = re.compile(r"^(?P<patient>.+)_(?P<slice>\d+)_mask\.tif$", re.IGNORECASE)
    pairs: dict[tuple[str, int], tuple[Path, Path]] = {}
    for mask in sorted(raw.rglob("*_mask.tif")):
        m = pat.match(mask.name)
        image = mask.with_name(mask.name[: -len("_mask.tif")] + ".tif")
        if m and image.is_file():
            pairs.setdefault((m["patient"], int(m["slice"])), (image, mask))   # the zip holds a duplicate tree
    if not pairs:
        raise SystemExit(f"convert lgg: no TCGA_*_<n>.tif / _mask.tif pairs under {raw}")
    split = assign_splits([p for p, _ in pairs], seed, LGG_FRACTIONS)
    rows = []
    for (patient, sl), (image, mask) in sorted(pairs.items()):
        (out / patient).mkdir(parents=True, exist_ok=True)
        img_rel, msk_rel = f"{patient}/{sl:03d}_image.png", f"{patient}/{sl:03d}_mask.png"
        Image.open(image).convert("RGB").save(out / img_rel)
        has = _binary_png(np.asarray(Image.open(mask)), out / msk_rel)
        rows.append([patient, sl, img_rel, msk_rel, int(has), split[patient]])
    _write_csv(out / "slices.csv", ["patient", "slice", "image", "mask", "has_tumour", "split"], rows)
    return len(rows)


# ----------------------------------------------------------------------------------------- DDTI
def _frame(crop_id: str) -> str:
    return re.sub(r"\(\d+\)$", "", crop_id)


def _ddti_from_crops(raw: Path, out: Path) -> list[str]:
    crops = {p.stem: p for p in raw.rglob("*.png") if p.parent.name.lower() in ("cropped", "images", "crops")}
    masks = {p.stem: p for p in raw.rglob("*") if p.parent.name.lower() in ("mask", "masks") and p.suffix.lower() in (".gif", ".png")}
    ids = sorted(set(crops) & set(masks))
    for cid in ids:
        Image.open(crops[cid]).convert("L").save(out / "images" / f"{cid}.png")
        _binary_png(np.asarray(Image.open(masks[cid]).convert("L")), out / "masks" / f"{cid}.png")
    return ids


def _ddti_from_xml(raw: Path, out: Path, border: int = 30, size: int = 300) -> list[str]:
    ids = []
    for xml in sorted(raw.rglob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            continue
        for mark in root.iter("mark"):
            image_no = (mark.findtext("image") or "").strip()
            try:
                shapes = json.loads(mark.findtext("svg") or "")
            except ValueError:
                continue                                  # marks without a polygon
            picture = next((xml.with_name(f"{xml.stem}_{image_no}{ext}") for ext in (".jpg", ".png", ".jpeg")
                            if xml.with_name(f"{xml.stem}_{image_no}{ext}").is_file()), None)
            if picture is None or not shapes:
                continue
            img = Image.open(picture).convert("L")
            for k, shape in enumerate(shapes, start=1):
                pts = [(float(p["x"]), float(p["y"])) for p in shape.get("points", [])]
                if len(pts) < 3:
                    continue
                mask = Image.new("L", img.size, 0)
                ImageDraw.Draw(mask).polygon(pts, fill=255, outline=255)
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                box = (int(max(0, min(xs) - border)), int(max(0, min(ys) - border)),
                       int(min(img.width, max(xs) + border)), int(min(img.height, max(ys) + border)))
                cid = f"{xml.stem}_{image_no}" + (f"({k})" if len(shapes) > 1 else "")
                img.crop(box).resize((size, size), Image.BILINEAR).save(out / "images" / f"{cid}.png")
                mask.crop(box).resize((size, size), Image.NEAREST).save(out / "masks" / f"{cid}.png")
                ids.append(cid)
    return ids


def convert_ddti(raw: Path, out: Path, seed: int = 0) -> int:
    """Public DDTI crops or raw XML+JPEG -> pairs.csv layout; returns the number of crops."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    ids = _ddti_from_crops(raw, out) or _ddti_from_xml(raw, out)
    if not ids:
        raise SystemExit(f"convert ddti: found neither cropped/*.png + mask/*.gif nor <case>.xml + images under {raw}")
    split = assign_splits([_frame(i) for i in ids], seed, DDTI_FRACTIONS)
    rows = [[i, _frame(i), f"images/{i}.png", f"masks/{i}.png", split[_frame(i)]] for i in sorted(ids)]
    _write_csv(out / "pairs.csv", ["id", "frame", "image", "mask", "split"], rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert a raw public download into the ctslib CSV layout.")
    ap.add_argument("dataset", choices=["lgg", "ddti"], help="which raw layout to convert")
    ap.add_argument("raw", type=Path, help="folder holding the extracted raw download")
    ap.add_argument("out", type=Path, help="output folder (created; should be empty)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the patient/frame-level split (default: 0)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n = (convert_lgg if args.dataset == "lgg" else convert_ddti)(args.raw, args.out, args.seed)
    print(f"convert {args.dataset}: wrote {n} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""2-D image/mask pairs from a CSV or a folder: DDTI, LGG, ISIC-style user folders.

Per item (docs/method.md section 8): decode -> scale to [0,1] -> pad to a square -> optional
diffusion -> z-score per channel -> resize to ``image_size`` (mask: nearest, exactly {0,1}).
PNGs are decoded lazily; each preprocessed item is cached as one .npy (see cache.py).
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .base import SegDataset, image_and_mask
from .cache import ItemCache, cache_root, cached_or_made
from .errors import DataError, data_error
from .preprocess import DiffusionConfig, preprocess_picture, single_thread
from .readers import MASK_RULES, check_same_shape, picture_mask, read_picture, to_channels
from .splits import ALL, limit_by_cases, seeded_case_split

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
MASK_SUFFIXES = ("", "_mask", "_segmentation", "_seg", "_label", "_gt")
IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "annotations", "gt")
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "validation", "valid"), "test": ("test", "testing")}
CASE_COLUMNS = ("case", "patient", "id", "frame")


@dataclass(frozen=True)
class PairsConfig:
    """How to read a pairs CSV/folder; every field can be set from spec options."""

    image_col: str = "image"
    mask_col: str = "mask"
    case_col: str | None = None     # None: first of case, patient, id, frame; else the image name
    slice_col: str | None = None    # None: "slice" if present, else 0
    split_col: str = "split"
    channels: int | None = None     # None: from the first image
    mask: str = "binary"            # binary | labels | threshold (readers.py)
    csv_name: str | None = None     # CSV looked for when the path is a folder
    cache: bool = True
    root: str | None = None         # rows must name files inside this folder (default: the CSV's folder)


LGG = PairsConfig(case_col="patient", channels=3, csv_name="slices.csv")
DDTI = PairsConfig(case_col="id", channels=1, csv_name="pairs.csv")


@dataclass(frozen=True)
class Record:
    image: str
    mask: str
    case: str
    slice: int


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


# ------------------------------------------------------------------------------------ discovery
def _inside(csv_dir: Path, root: Path, cell: str, csv_path: Path, line: int, column: str) -> Path:
    """A CSV cell as a path: relative to the CSV's folder, and inside `root` (refused otherwise).

    The check is on the written path (absolute, or with ``..`` leading out), so a dataset folder may link its
    files from elsewhere; a path written through a symbolic link to a folder inside `root` passes too (the two
    compared with links resolved). ``?root=FOLDER`` widens it for CSVs that list absolute paths.
    """
    text = (cell or "").strip()
    if not text:
        raise data_error(csv_path, f"line {line}: the {column!r} column is empty")
    path = Path(os.path.normpath(csv_dir / text))
    within = lambda folder, p: os.path.commonpath([folder, p]) == str(folder)  # noqa: E731
    if not (within(root, path) or within(os.path.realpath(root), os.path.realpath(path))):
        raise data_error(csv_path, f"line {line}: {column} {text!r} is outside the dataset folder {root}; rows must "
                                   "name files inside it (or give the spec option root=FOLDER that holds them)")
    return path


def records_from_csv(csv_path: Path, split: str, cfg: PairsConfig) -> list[Record]:
    """Rows of a pairs CSV whose split column equals ``split`` (any value; ``all`` = every row)."""
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
            columns = list(rows[0].keys()) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise data_error(csv_path, f"cannot read CSV ({exc})") from None
    if not rows:
        raise data_error(csv_path, "empty dataset: the CSV has no rows")
    for col in (cfg.image_col, cfg.mask_col):
        if col not in columns:
            raise data_error(csv_path, f"missing column {col!r} (columns: {', '.join(columns)})")
    if split != ALL:
        if cfg.split_col not in columns:
            raise data_error(csv_path, f"no {cfg.split_col!r} column, so split {split!r} cannot be selected; use split='all'")
        values = sorted({r[cfg.split_col] for r in rows})
        rows = [r for r in rows if r[cfg.split_col] == split]
        if not rows:
            raise data_error(csv_path, f"empty split {split!r}; the {cfg.split_col!r} column holds {', '.join(values)}")
    case_col = cfg.case_col or next((c for c in CASE_COLUMNS if c in columns), None)
    slice_col = cfg.slice_col or ("slice" if "slice" in columns else None)
    if case_col is not None and case_col not in columns:
        raise data_error(csv_path, f"missing case column {case_col!r} (columns: {', '.join(columns)})")
    base = csv_path.parent.resolve()
    root = Path(os.path.abspath(Path(cfg.root).expanduser())) if cfg.root else base
    out = []
    for n, r in enumerate(rows, start=2):
        image, mask = (_inside(base, root, r[col], csv_path, n, col) for col in (cfg.image_col, cfg.mask_col))
        try:
            sl = int(r[slice_col]) if slice_col else 0
        except ValueError:
            raise data_error(csv_path, f"line {n}: slice {r[slice_col]!r} is not an integer") from None
        case = r[case_col] if case_col else Path(r[cfg.image_col]).stem
        out.append(Record(str(image), str(mask), case, sl))
    return out


def _find_mask(mask_dir: Path, stem: str, masks: dict[str, Path]) -> Path | None:
    for suffix in MASK_SUFFIXES:
        hit = masks.get((stem + suffix).lower())
        if hit is not None:
            return hit
    return None


def _pictures(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()), key=lambda p: _natural(p.name))


def records_from_folder(root: Path, split: str, cfg: PairsConfig, seed: int = 0) -> list[Record]:
    """ISIC-style folders: ``[split/]images/*`` + ``[split/]masks/*`` with matching names
    (mask suffixes _mask, _segmentation, ... allowed), or one flat folder of X.png + X_mask.png.
    Without split subfolders, cases are split 70/10/20 with ``seed``."""
    split_dirs = {s: next((root / d for d in names if (root / d).is_dir()), None) for s, names in SPLIT_DIRS.items()}
    have_split_dirs = any(split_dirs.values())
    if have_split_dirs:
        chosen = [d for d in split_dirs.values() if d] if split == ALL else [split_dirs.get(split) or root / split]
        if not all(d.is_dir() for d in chosen):
            raise data_error(root, f"empty split {split!r}: no folder {split!r}; found {', '.join(d.name for d in split_dirs.values() if d)}")
    else:
        chosen = [root]
    records: list[Record] = []
    for folder in chosen:
        img_dir = next((folder / d for d in IMAGE_DIRS if (folder / d).is_dir()), None)
        msk_dir = next((folder / d for d in MASK_DIRS if (folder / d).is_dir()), None)
        if img_dir is not None and msk_dir is not None:
            images, mask_files = _pictures(img_dir), _pictures(msk_dir)
        else:
            files = _pictures(folder)
            mask_files = [p for p in files if any(p.stem.lower().endswith(s) for s in MASK_SUFFIXES[1:])]
            images = [p for p in files if p not in set(mask_files)]
        masks = {p.stem.lower(): p for p in mask_files}
        for image in images:
            mask = _find_mask(msk_dir or folder, image.stem, masks)
            if mask is None:
                raise data_error(image, f"no mask found for this image (looked for {image.stem}{{{','.join(MASK_SUFFIXES)}}}.* in {msk_dir or folder})")
            records.append(Record(str(image.resolve()), str(mask.resolve()), image.stem, 0))
    if not records:
        raise data_error(root, "empty dataset: no image/mask pairs found")
    if not have_split_dirs and split != ALL:
        assign = seeded_case_split([r.case for r in records], seed)
        records = [r for r in records if assign[r.case] == split]
        if not records:
            raise data_error(root, f"empty split {split!r} after the seeded 70/10/20 case split; use split='all'")
    return records


def find_records(path: Path, split: str, cfg: PairsConfig, seed: int = 0) -> tuple[list[Record], Path]:
    """Records from a CSV file, a folder holding the config's CSV, or a folder of pairs."""
    if not path.exists():
        raise data_error(path, "not found")
    if path.is_file():
        return records_from_csv(path, split, cfg), path
    if cfg.csv_name:
        csv_path = path / cfg.csv_name
        if not csv_path.is_file():
            raise data_error(csv_path, "not found (expected the CSV layout written by data_download.sh)")
        return records_from_csv(csv_path, split, cfg), csv_path
    for name in ("pairs.csv", "slices.csv"):
        if (path / name).is_file():
            return records_from_csv(path / name, split, cfg), path / name
    return records_from_folder(path, split, cfg, seed), path


# -------------------------------------------------------------------------------------- dataset
class PairsDataset(SegDataset):
    """Lazily decoded 2-D pairs, preprocessed per item and cached as .npy (one file per item)."""

    has_native_grid = True

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        image_size: int = 64,
        cfg: PairsConfig = PairsConfig(),
        diffusion: DiffusionConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        limit: int | None = None,
    ):
        if cfg.mask not in MASK_RULES:
            raise DataError(f"{path}: mask option must be one of {', '.join(MASK_RULES)}, got {cfg.mask!r}")
        records, self.source = find_records(Path(path), split, cfg, seed)
        records.sort(key=lambda r: (_natural(r.case), r.slice))
        for r in records:
            for f in (r.image, r.mask):
                if not os.path.isfile(f):
                    raise data_error(f, f"file not found (listed in {self.source})")
        keep = limit_by_cases([r.case for r in records], [r.slice for r in records], limit)
        self.records = [records[i] for i in keep]
        if not self.records:
            raise data_error(self.source, f"empty dataset for split {split!r} (limit={limit})")
        self.image_size, self.diffusion, self.split = int(image_size), diffusion, split
        if cfg.channels is None:
            first = read_picture(self.records[0].image)
            cfg = replace(cfg, channels=1 if first.ndim == 2 or first.shape[2] <= 2 else 3)
        self.cfg = cfg
        self.in_channels = int(cfg.channels)
        key = f"pairs|{self.image_size}|{cfg.channels}|{cfg.mask}|{diffusion.key() if diffusion else 'nodiff'}"
        self.cache = ItemCache(cache_root(cache_dir), "pairs", key) if cfg.cache else None

    def __len__(self) -> int:
        return len(self.records)

    def meta(self, i: int) -> dict:
        r = self.records[i]
        return {"case": r.case, "slice": r.slice, "path": r.image}

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.records[i]
        return image_and_mask(cached_or_made(self.cache, (r.image, r.mask), lambda: self.preprocess(r)))

    def native_mask(self, i: int) -> np.ndarray:
        """The mask picture as stored (H, W) bool, for scoring on the native grid."""
        r = self.records[self._check_index(i)]
        return picture_mask(read_picture(r.mask), r.mask, self.cfg.mask)

    def preprocess(self, r: Record) -> np.ndarray:
        """Decode and preprocess one pair; returns (C+1, S, S) float32 with the mask last."""
        raw = read_picture(r.image)
        image = to_channels(raw, self.in_channels, r.image)
        mask = picture_mask(read_picture(r.mask), r.mask, self.cfg.mask)
        check_same_shape(image.shape[1:], mask.shape, r.image, r.mask)
        with single_thread():
            x, m = preprocess_picture(image, mask, self.image_size, self.diffusion)
            return torch.cat([x, m]).numpy().astype(np.float32, copy=False)


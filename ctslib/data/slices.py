"""The 2-D BraTS slice layout of the MedSegDiff/CTS loaders (``brats-slices:PATH``).

Layout: ``<root>/{training,testing}/<NNNNNN>/<case>_{t1,t1ce,t2,flair,seg}_<SSS>_w.nii.gz``,
one 2-D NIfTI per modality and slice. The volume is not available, so the section 8 step 2
normalisation (brain = any modality above its minimum, percentile clip, z-score, background 0)
is applied per slice. Whole tumour = seg > 0. Folders without any ``seg`` file (``testing``)
are unlabelled: their masks are all zero and the dataset's ``labelled`` is False.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import SegDataset, image_and_mask
from .cache import ItemCache, cache_root, cached_or_made
from .errors import data_error
from .preprocess import DiffusionConfig, fit_to_size, single_thread, zscore_volume
from .readers import labels_to_mask, read_nifti
from .splits import ALL, limit_by_cases

SPLIT_DIRS = {"train": ("training", "train"), "val": ("validation", "val"), "test": ("testing", "test")}
FILE = re.compile(r"^(?P<case>.+?)_(?P<mod>[A-Za-z0-9]+)_(?P<slice>\d+)(?:_w)?\.nii(?:\.gz)?$")


@dataclass(frozen=True)
class SliceConfig:
    """Modality names (BraTS order) and label name of the slice layout."""

    modalities: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
    label: str = "seg"
    norm: str = "zscore"
    clip: tuple[float, float] = (0.5, 99.5)
    fit: str = "resize"
    cache: bool = True


@dataclass(frozen=True)
class SliceItem:
    folder: str
    case: str
    slice: int
    files: tuple[str, ...]      # modalities in order
    label: str | None


def _scan_folder(folder: Path, cfg: SliceConfig) -> SliceItem | None:
    found: dict[str, Path] = {}
    case = sl = None
    for f in folder.iterdir():
        m = FILE.match(f.name)
        if m and m["mod"].lower() in cfg.modalities + (cfg.label,):
            found[m["mod"].lower()] = f
            case, sl = m["case"], int(m["slice"])
    if not found:
        return None
    missing = [mod for mod in cfg.modalities if mod not in found]
    if missing:
        raise data_error(folder, f"missing modality {', '.join(missing)} (found {', '.join(sorted(found))})")
    label = found.get(cfg.label)
    return SliceItem(str(folder.resolve()), case, sl, tuple(str(found[m].resolve()) for m in cfg.modalities),
                     str(label.resolve()) if label else None)


class SliceDataset(SegDataset):
    """Items of the MedSegDiff BraTS slice layout; each preprocessed item is cached as .npy."""

    has_native_grid = True

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 64,
        cfg: SliceConfig = SliceConfig(),
        diffusion: DiffusionConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        limit: int | None = None,
    ):
        root = Path(root)
        if not root.is_dir():
            raise data_error(root, "not found (expected training/ and testing/ slice folders)")
        present = {s: next((root / d for d in names if (root / d).is_dir()), None) for s, names in SPLIT_DIRS.items()}
        if split == ALL:
            groups = [d for d in present.values() if d] or [root]
        elif present.get(split) is not None:
            groups = [present[split]]
        else:
            have = ", ".join(d.name for d in present.values() if d) or "none"
            raise data_error(root, f"empty split {split!r}: no folder for it (split folders here: {have})")
        items: list[SliceItem] = []
        labelled = True
        for group in groups:
            found = [it for d in sorted(group.iterdir()) if d.is_dir() and (it := _scan_folder(d, cfg))]
            with_label = [it for it in found if it.label]
            if with_label and len(with_label) != len(found):
                bad = next(it for it in found if not it.label)
                raise data_error(bad.folder, f"missing label {cfg.label!r} (other slices in {group} have one)")
            if found and not with_label:
                labelled = False
                warnings.warn(f"{group}: no {cfg.label!r} files; masks are all zero (unlabelled split)", stacklevel=2)
            items.extend(found)
        if not items:
            raise data_error(root, f"empty dataset: no slice folders in split {split!r}")
        items.sort(key=lambda it: (it.case, it.slice))
        keep = limit_by_cases([it.case for it in items], [it.slice for it in items], limit)
        self.items = [items[i] for i in keep]
        self.cfg, self.diffusion, self.labelled = cfg, diffusion, labelled
        self.image_size, self.in_channels, self.split = int(image_size), len(cfg.modalities), split
        self.fit = cfg.fit
        key = f"slices|{self.image_size}|{cfg}|{diffusion.key() if diffusion else 'nodiff'}"
        self.cache = ItemCache(cache_root(cache_dir), "brats-slices", key) if cfg.cache else None

    def __len__(self) -> int:
        return len(self.items)

    def meta(self, i: int) -> dict:
        it = self.items[i]
        return {"case": it.case, "slice": it.slice, "path": it.folder}

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        it = self.items[i]
        sources = it.files + ((it.label,) if it.label else ())
        return image_and_mask(cached_or_made(self.cache, sources, lambda: self.preprocess(it)))

    def native_mask(self, i: int) -> np.ndarray:
        """The label slice as stored (H, W) bool (all False for an unlabelled split)."""
        it = self.items[self._check_index(i)]
        if it.label:
            return labels_to_mask(read_nifti(it.label).squeeze(), it.label)
        return np.zeros(read_nifti(it.files[0]).squeeze().shape, dtype=bool)

    def preprocess(self, it: SliceItem) -> np.ndarray:
        """Read, validate and normalise one slice; (C+1, S, S) float32 with the mask last."""
        chans = []
        for f in it.files:
            a = read_nifti(f).squeeze()
            if a.ndim != 2:
                raise data_error(f, f"expected a 2-D slice, got shape {a.shape}")
            if chans and a.shape != chans[0].shape:
                raise data_error(f, f"shape {a.shape} does not match {Path(it.files[0]).name} shape {chans[0].shape}")
            chans.append(a)
        if it.label:
            labels = read_nifti(it.label).squeeze()
            if labels.shape != chans[0].shape:
                raise data_error(it.label, f"label shape {labels.shape} does not match image shape {chans[0].shape}")
            mask = labels_to_mask(labels, it.label)
        else:
            mask = np.zeros(chans[0].shape, dtype=bool)
        with single_thread():
            norm = zscore_volume(np.stack(chans), None, self.cfg.clip, self.cfg.norm, self.diffusion, "cpu")
            m = torch.from_numpy(mask.astype(np.float32))[None]
            x, m = fit_to_size(torch.from_numpy(norm), m, self.image_size, self.cfg.fit)
            return torch.cat([x, m]).numpy().astype(np.float32, copy=False)


"""BraTS-style NIfTI volumes -> axial 2-D training slices, with a memory-mapped slice cache.

docs/method.md section 8, steps 1-6: canonical (RAS) orientation, axial slices along the third axis,
per-volume per-modality normalisation, optional diffusion, resize (or pad), whole tumour =
label > 0, patient-level splits. Each volume is decoded once; its preprocessed slices are
stored as ``.npy`` files and memory-mapped, so an epoch never re-decompresses a volume (the
released loader decompresses five volumes for every item).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import SegDataset
from .cache import cache_root, digest, fingerprint, load_npy, save_json, save_npy
from .errors import DataError, data_error
from .preprocess import DiffusionConfig, slices_to_size, zscore_volume
from .readers import labels_to_mask, nifti_spacing, read_nifti
from .splits import ALL, limit_by_cases, read_split_file, seeded_case_split

NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class VolumeLayout:
    """File names inside one subject folder: modality and label names, optional brain mask."""

    modalities: tuple[str, ...]
    label: str
    brain_mask: str | None = None


LAYOUTS = {
    # BraTS 2021: BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz
    "brats2021": VolumeLayout(("t1", "t1ce", "t2", "flair"), "seg"),
    # BraTS 2015 (<data root>/brats2015): z-scored inside the brain, so the background is a
    # negative constant; the provided brain mask defines the brain voxels.
    "brats2015": VolumeLayout(("Flair", "T1c"), "OTMultiClass", "brainmask"),
}


@dataclass(frozen=True)
class VolumeConfig:
    """Options of the ``brats:`` loader (all settable as spec options)."""

    layout: str = "auto"                      # auto | brats2021 | brats2015
    modalities: tuple[str, ...] | None = None  # overrides the layout's names
    label: str | None = None
    brain_mask: str | None = None
    norm: str = "zscore"                      # zscore | minmax (section 8 step 2)
    clip: tuple[float, float] = (0.5, 99.5)
    fit: str = "resize"                       # resize | pad (section 8 step 4)
    slices: str = "brain"                     # brain | all | tumour (section 8 step 6)
    cache: bool = True
    split_file: str | None = None             # case,split CSV; default <root>/splits.csv if present


def _stem(name: str) -> str:
    return NIFTI.sub("", name)


def _natural(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def find_cases(root: Path) -> list[Path]:
    """Subject folders under ``root`` (folders holding NIfTI files), or ``root`` itself."""
    if not root.is_dir():
        raise data_error(root, "not a folder of subject volumes")
    subdirs = [d for d in root.iterdir() if d.is_dir() and any(NIFTI.search(f.name) for f in d.iterdir())]
    if not subdirs and any(NIFTI.search(f.name) for f in root.iterdir()):
        subdirs = [root]
    if not subdirs:
        raise data_error(root, "empty dataset: no subject folders with NIfTI (.nii/.nii.gz) files")
    return sorted(subdirs, key=lambda d: _natural(d.name))


def match_file(folder: Path, name: str) -> Path | None:
    """The NIfTI file in ``folder`` for a modality/label ``name``.

    Matches (case-insensitive) ``name``, ``<folder>_<name>``, ``<name>_*`` or ``*_<name>``, in
    that order of preference; "t1" never matches "t1ce".
    """
    files = [f for f in folder.iterdir() if NIFTI.search(f.name)]
    n, case = name.lower(), folder.name.lower()
    rules = (
        lambda s: s == n,
        lambda s: s == f"{case}_{n}",
        lambda s: s.startswith(n + "_"),
        lambda s: s.endswith("_" + n),
    )
    for rule in rules:
        hits = [f for f in files if rule(_stem(f.name).lower())]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise data_error(folder, f"ambiguous files for {name!r}: {', '.join(sorted(h.name for h in hits))}")
    return None


def resolve_layout(cfg: VolumeConfig, first_case: Path) -> VolumeLayout:
    """The layout from cfg (preset or explicit names); ``auto`` tries the presets on one case."""
    if cfg.layout != "auto" and cfg.layout not in LAYOUTS:
        raise DataError(f"unknown volume layout {cfg.layout!r}; use auto, {', '.join(LAYOUTS)}")
    if cfg.layout == "auto":
        base = next((lay for lay in LAYOUTS.values()
                     if all(match_file(first_case, n) for n in lay.modalities + (lay.label,))), None)
        if base is None and cfg.modalities is None:
            names = ", ".join(sorted(f.name for f in first_case.iterdir()))
            raise data_error(first_case, f"unrecognised volume layout (files: {names}); "
                             "give modalities=a,b,...&label=NAME in the spec")
        base = base or LAYOUTS["brats2021"]
    else:
        base = LAYOUTS[cfg.layout]
    brain = base.brain_mask if cfg.brain_mask is None else (None if cfg.brain_mask.lower() in ("", "none") else cfg.brain_mask)
    return VolumeLayout(tuple(cfg.modalities) if cfg.modalities else base.modalities, cfg.label or base.label, brain)


@dataclass
class Case:
    name: str
    folder: Path
    files: list[Path]          # modalities..., label[, brain mask]


def case_files(folder: Path, layout: VolumeLayout) -> Case:
    """Resolve every file a case needs; a missing one is a DataError naming folder and name."""
    files = []
    names = layout.modalities + (layout.label,) + ((layout.brain_mask,) if layout.brain_mask else ())
    for name in names:
        f = match_file(folder, name)
        if f is None:
            kind = "label" if name == layout.label else "brain mask" if name == layout.brain_mask else "modality"
            raise data_error(folder, f"missing {kind} {name!r} (expected a file like {folder.name}_{name}.nii.gz or {name}*.nii.gz)")
        files.append(f)
    return Case(folder.name, folder, files)


def load_case(case: Case, layout: VolumeLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and validate one subject: (channels (C,X,Y,Z), mask (X,Y,Z) bool, brain (X,Y,Z) bool)."""
    n_mod = len(layout.modalities)
    chans = []
    for f in case.files[:n_mod]:
        vol = read_nifti(f)
        if vol.ndim != 3:
            raise data_error(f, f"expected a 3-D volume, got shape {vol.shape}")
        if chans and vol.shape != chans[0].shape:
            raise data_error(f, f"shape {vol.shape} does not match {case.files[0].name} shape {chans[0].shape}")
        chans.append(vol)
    label_file = case.files[n_mod]
    labels = read_nifti(label_file)
    if labels.shape != chans[0].shape:
        raise data_error(label_file, f"label shape {labels.shape} does not match image {case.files[0].name} shape {chans[0].shape}")
    mask = labels_to_mask(labels, label_file)
    channels = np.stack(chans)
    if layout.brain_mask:
        bm_file = case.files[n_mod + 1]
        bm = read_nifti(bm_file)
        if bm.shape != chans[0].shape:
            raise data_error(bm_file, f"brain mask shape {bm.shape} does not match image shape {chans[0].shape}")
        brain = bm > 0.5
    else:
        brain = (channels > channels.reshape(len(chans), -1).min(axis=1)[:, None, None, None]).any(axis=0)
    if not brain.any():
        raise data_error(case.folder, "no brain voxels (every modality is constant)")
    return channels, mask, brain


def preprocess_case(
    case: Case, layout: VolumeLayout, cfg: VolumeConfig, image_size: int,
    diffusion: DiffusionConfig | None, device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """One subject -> (images (S,C,H,W) float32, masks (S,1,H,W) uint8, slice indices, native shape)."""
    channels, mask, brain = load_case(case, layout)
    norm = zscore_volume(channels, brain, cfg.clip, cfg.norm, diffusion, device)
    if cfg.slices == "all":
        keep = np.arange(mask.shape[2])
    elif cfg.slices == "brain":
        keep = np.flatnonzero(brain.any(axis=(0, 1)))
    elif cfg.slices == "tumour":
        keep = np.flatnonzero(mask.any(axis=(0, 1)))
    else:
        raise DataError(f"slices must be brain, all or tumour, got {cfg.slices!r}")
    x, m = slices_to_size(norm, mask, keep, image_size, cfg.fit)
    return x.numpy().astype(np.float32), m.numpy().astype(np.uint8), keep.astype(np.int64), tuple(mask.shape)


class VolumeDataset(SegDataset):
    """Axial slices of BraTS-style volumes; items come from the slice cache unless cache=False."""

    has_native_grid = True

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 64,
        cfg: VolumeConfig = VolumeConfig(),
        diffusion: DiffusionConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        limit: int | None = None,
        progress: bool = True,
    ):
        self.root, self.cfg, self.diffusion = Path(root), cfg, diffusion
        self.image_size, self.split, self.fit = int(image_size), split, cfg.fit
        if cfg.fit not in ("resize", "pad") or cfg.norm not in ("zscore", "minmax"):
            raise DataError(f"{root}: fit must be resize|pad and norm zscore|minmax (got {cfg.fit!r}, {cfg.norm!r})")
        folders = find_cases(self.root)
        self.layout = resolve_layout(cfg, folders[0])
        self.in_channels = len(self.layout.modalities)
        folders = self._select_split(folders, split, seed)
        self.cases = [case_files(f, self.layout) for f in folders]
        self._cache_dir = cache_root(cache_dir) / "brats"
        self._config_key = (f"vol|{self.image_size}|{self.layout}|{cfg.norm}|{cfg.clip}|{cfg.fit}|{cfg.slices}|"
                            f"{diffusion.key() if diffusion else 'nodiff'}")
        self._mmaps: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._native_labels: tuple[int, np.ndarray] | None = None     # (case index, (X,Y,Z) bool)
        self._index_cases(limit, progress)

    # ----------------------------------------------------------------------------- construction
    def _select_split(self, folders: list[Path], split: str, seed: int) -> list[Path]:
        if split == ALL:
            return folders
        split_file = Path(self.cfg.split_file) if self.cfg.split_file else self.root / "splits.csv"
        if self.cfg.split_file or split_file.is_file():
            assign = read_split_file(split_file)
            source = str(split_file)
        else:
            assign = seeded_case_split([f.name for f in folders], seed)
            source = f"the seeded 70/10/20 case split (seed {seed})"
        chosen = [f for f in folders if assign.get(f.name) == split]
        if not chosen:
            raise data_error(self.root, f"empty split {split!r} in {source} over {len(folders)} cases; "
                             "use split='all' or a splits.csv with case,split columns")
        return chosen

    def _cache_paths(self, case: Case) -> tuple[Path, Path, Path]:
        key = digest(self._config_key, *(fingerprint(f.resolve()) for f in case.files))
        base = self._cache_dir / f"{case.name}-{key}"
        return Path(f"{base}.img.npy"), Path(f"{base}.mask.npy"), Path(f"{base}.json")

    def _index_cases(self, limit: int | None, progress: bool) -> None:
        """Build (or find) each case's slice cache, and the flat item index."""
        import json

        from tqdm.auto import tqdm

        self._info: list[dict] = []
        self._paths: list[tuple[Path, Path, Path]] = []
        item_case, item_pos, item_slice = [], [], []
        for ci, case in enumerate(tqdm(self.cases, desc="brats slice cache", disable=not progress or len(self.cases) < 4)):
            paths = self._cache_paths(case)
            info = None
            if self.cfg.cache and paths[2].is_file():
                try:
                    info = json.loads(paths[2].read_text())
                except (OSError, ValueError):
                    info = None
            if info is None:
                img, msk, keep, shape = preprocess_case(case, self.layout, self.cfg, self.image_size, self.diffusion)
                info = {"slices": keep.tolist(), "shape": list(shape)}
                if self.cfg.cache:
                    save_npy(paths[0], img)
                    save_npy(paths[1], msk)
                    save_json(paths[2], info)       # written last: marks the entry complete
            self._info.append(info)
            self._paths.append(paths)
            for pos, s in enumerate(info["slices"]):
                item_case.append(ci)
                item_pos.append(pos)
                item_slice.append(s)
            if limit is not None and len(item_case) >= limit:
                break
        keep = limit_by_cases([self.cases[c].name for c in item_case], item_slice, limit)
        if not keep:
            raise data_error(self.root, f"empty dataset: no {self.cfg.slices} slices in split {self.split!r}")
        self._item_case = np.asarray(item_case, dtype=np.int64)[keep]
        self._item_pos = np.asarray(item_pos, dtype=np.int64)[keep]
        self._item_slice = np.asarray(item_slice, dtype=np.int64)[keep]

    def __getstate__(self) -> dict:
        """Pickle (spawned DataLoader workers) without the open memory maps; they reopen lazily."""
        state = self.__dict__.copy()
        state["_mmaps"] = OrderedDict()
        state["_native_labels"] = None
        return state

    # ------------------------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self._item_case)

    def meta(self, i: int) -> dict:
        case = self.cases[self._item_case[i]]
        return {"case": case.name, "slice": int(self._item_slice[i]), "path": str(case.folder)}

    def _case_index(self, case: str) -> int:
        return next(k for k, c in enumerate(self.cases) if c.name == case)

    def _label_file(self, ci: int) -> Path:
        return self.cases[ci].files[len(self.layout.modalities)]

    def native_shape(self, case: str) -> tuple[int, int, int]:
        """The (X, Y, Z) grid of a case's canonical volume, for per-volume metrics."""
        return tuple(self._info[self._case_index(case)]["shape"])

    def native_mask(self, i: int) -> np.ndarray:
        """Whole-tumour mask of this axial slice on the canonical volume's (X, Y) grid."""
        i = self._check_index(i)
        ci = int(self._item_case[i])
        if self._native_labels is None or self._native_labels[0] != ci:
            label_file = self._label_file(ci)
            self._native_labels = (ci, labels_to_mask(read_nifti(label_file), label_file))
        return self._native_labels[1][:, :, int(self._item_slice[i])]

    def volume_spacing(self, case: str) -> tuple[float, float, float]:
        """Voxel size (mm) of a case's slices stacked as (slice, X, Y): the label file's (z, x, y) zooms."""
        x, y, z = nifti_spacing(self._label_file(self._case_index(case)))
        return (z, x, y)

    def _arrays(self, ci: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._mmaps.get(ci)
        if hit is not None:
            self._mmaps.move_to_end(ci)
            return hit
        img_path, mask_path, _ = self._paths[ci]
        img, msk = load_npy(img_path, mmap=True), load_npy(mask_path, mmap=True)
        if img is None or msk is None:                # cache entry removed underneath us: rebuild
            img, msk, _, _ = preprocess_case(self.cases[ci], self.layout, self.cfg, self.image_size, self.diffusion, "cpu")
        self._mmaps[ci] = (img, msk)
        if len(self._mmaps) > 64:
            self._mmaps.popitem(last=False)
        return img, msk

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ci, pos = int(self._item_case[i]), int(self._item_pos[i])
        if not self.cfg.cache:                        # decode the whole case for every item
            img, msk, _, _ = preprocess_case(self.cases[ci], self.layout, self.cfg, self.image_size, self.diffusion, "cpu")
        else:
            img, msk = self._arrays(ci)
        return torch.from_numpy(np.array(img[pos], dtype=np.float32)), torch.from_numpy(msk[pos].astype(np.float32))

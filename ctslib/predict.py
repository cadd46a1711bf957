"""Segment new scans with a trained checkpoint: NIfTI volume(s) -> NIfTI mask, PNG -> PNG mask.

    python -m ctslib predict --ckpt runs/brats/ckpt.pt SUBJECT_DIR -o mask.nii.gz --uncertainty std.nii.gz
    python -m ctslib predict --ckpt runs/brats/ckpt.pt FLAIR.nii.gz T1C.nii.gz -o mask.nii.gz
    python -m ctslib predict --ckpt runs/ddti/ckpt.pt image.png -o mask.png
    python -m ctslib predict --ckpt runs/ddti/ckpt.pt images/ -o masks/
    python -m ctslib predict --ckpt runs/brats/ckpt.pt subjects/ -o masks/     # one subject folder per scan
    python -m ctslib predict --ckpt lgg-tiny64 --input scan.png --output mask.png   # a pretrained name

Volumes go through the dataset path's preprocessing (docs/method.md section 8): closest-canonical (RAS)
orientation, per-volume per-modality normalisation (``ctslib.data.preprocess.zscore_volume``),
axial slices, resize (or pad) to the model size. Each slice is segmented with
``ctslib.sampling.segment`` (one step, multistep ``--levels``, ``--members`` ensemble), brought
back to the native in-plane grid (nearest neighbour; crop when padded), stacked in the original
slice order and mapped back to the input's own orientation, so the mask aligns voxel for voxel
with the input and is written with the input's affine and header (uint8, values {0,1}).
Pictures follow the pairs pipeline (scale to [0,1], pad to a square, z-score, resize); the mask
PNG has the input's size and values {0,255}.

Files are written atomically (temporary file + ``os.replace``); an input is never overwritten and
an existing output is refused unless ``force=True`` (``--force``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data.errors import DataError
from .data.pairs import IMAGE_EXTS
from .data.preprocess import DiffusionConfig, preprocess_picture, slices_to_size, to_native, zscore_volume
from .data.preprocess import brain_mask as default_brain
from .data.readers import read_nifti, read_picture, to_channels
from .data.volumes import LAYOUTS, NIFTI, VolumeConfig, match_file
from .device import autocast, modules_in_layout, pick_device, use_channels_last
from .io_utils import atomic_write as _atomic_write
from .sampling import segment

OUTPUT_KINDS = ("consistency", "aux")


class PredictError(ValueError):
    """A prediction request that cannot be served (wrong channel count, output clash, ...)."""


@dataclass
class PredictOptions:
    """How to sample: multistep levels, ensemble size, seed, which output, batching."""
    levels: tuple[float, ...] = ()          # multistep levels after sigma_max (choose them on val); () = one step
    members: int = 1                        # ensemble size E (the uncertainty map is their std)
    seed: int = 0
    output_kind: str = "consistency"        # "consistency" (the consistency sample) or "aux" (the head y_hat)
    batch_size: int = 16
    slices: str = "brain"                   # volumes: "brain", "all" or "A:B" (canonical axial indices)
    diffusion: DiffusionConfig | None = None  # Perona-Malik preprocessing (use if the model was trained with it)

    def __post_init__(self):
        if self.output_kind not in OUTPUT_KINDS:
            raise PredictError(f"output kind must be one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        if self.members < 1:
            raise PredictError(f"members must be >= 1, got {self.members}")
        if self.batch_size < 1:
            raise PredictError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass
class Predictor:
    """A model ready for inference, with what the checkpoint says about its training."""
    model: torch.nn.Module
    device: torch.device
    mask_encoding: str = "pm1"
    weights: str = "ema"
    step: int = 0
    data_spec: str = ""
    info: dict = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return int(self.model.cfg.in_channels)

    @property
    def image_size(self) -> int:
        return int(self.model.cfg.image_size)


def load_predictor(ckpt: str | Path, weights: str = "ema", device: str = "auto", compile: bool = False) -> Predictor:
    """Rebuild the model of a checkpoint (EMA weights by default) on `device`, in eval mode.

    compile=True runs the consistency function through torch.compile (nn.Module.compile: the same
    module and state_dict): the first batch pays the compilation, later ones run the fused kernels.
    """
    from .checkpoint import build_model_from_checkpoint
    if weights not in ("ema", "model"):
        raise PredictError(f"weights must be 'ema' or 'model', got {weights!r}")
    dev = pick_device(device)
    model, info = build_model_from_checkpoint(ckpt, weights, map_location="cpu")
    model.to(dev).eval()
    modules_in_layout(use_channels_last(dev), model)
    if compile:
        model.compile()
    return Predictor(model, dev, info["train_cfg"].mask_encoding, weights, int(info["step"]), info.get("data", ""), info)


# ------------------------------------------------------------------------------- model <-> native
@torch.no_grad()
def predict_slices(pred: Predictor, images: torch.Tensor, opts: PredictOptions = PredictOptions(),
                   seeds: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment preprocessed slices (S,C,size,size): returns (mask (S,1,size,size) in {0,1}, std map), on CPU.

    Slice i uses seed `seeds[i]`, so a slice's result never depends on how the stack is batched.
    """
    if images.shape[1] != pred.in_channels:
        raise PredictError(f"the checkpoint expects {pred.in_channels} image channel(s), got {images.shape[1]}")
    seeds = list(range(len(images))) if seeds is None else list(seeds)
    masks, stds = [], []
    for start in range(0, len(images), opts.batch_size):
        x = images[start:start + opts.batch_size].to(pred.device, torch.float32)
        with autocast(pred.device):
            seg = segment(pred.model, x, opts.levels or None, opts.members, seeds[start:start + len(x)], pred.mask_encoding)
        if opts.output_kind == "aux":
            if seg.aux_mask is None:
                raise PredictError("this model has no auxiliary head (CTS-nM); use --output-kind consistency")
            masks.append(seg.aux_mask.float().cpu())
        else:
            masks.append(seg.mask.float().cpu())
        stds.append(seg.std.float().cpu())
    return torch.cat(masks), torch.cat(stds)


def _slice_selection(spec: str, brain: np.ndarray) -> np.ndarray:
    depth = brain.shape[2]
    if spec == "brain":
        keep = np.flatnonzero(brain.any(axis=(0, 1)))
    elif spec == "all":
        keep = np.arange(depth)
    else:
        lo, sep, hi = spec.partition(":")
        try:
            if not sep:
                raise ValueError
            keep = np.arange(depth)[slice(int(lo) if lo else None, int(hi) if hi else None)]
        except ValueError:
            raise PredictError(f"slices must be 'brain', 'all' or 'A:B', got {spec!r}") from None
    if keep.size == 0:
        raise PredictError(f"no slices selected (slices={spec!r}, volume depth {depth})")
    return keep


def predict_volume(pred: Predictor, channels: np.ndarray, brain: np.ndarray | None = None,
                   opts: PredictOptions = PredictOptions(), cfg: VolumeConfig | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Segment a canonical volume (C,X,Y,Z) of raw intensities: returns (mask (X,Y,Z) uint8, std (X,Y,Z) float32).

    Normalises as the dataset path does (`zscore_volume`, cfg.norm / cfg.clip / cfg.fit), segments
    the selected axial slices and resizes back; unselected slices are background (0).
    """
    cfg = cfg or VolumeConfig()
    if channels.ndim != 4:
        raise PredictError(f"expected channels (C,X,Y,Z), got shape {channels.shape}")
    if channels.shape[0] != pred.in_channels:
        raise PredictError(f"the checkpoint expects {pred.in_channels} modalities (image channels), got {channels.shape[0]}")
    if brain is None:
        brain = default_brain(channels)
    norm = zscore_volume(channels, brain, cfg.clip, cfg.norm, opts.diffusion)
    keep = _slice_selection(opts.slices, brain)
    x, _ = slices_to_size(norm, None, keep, pred.image_size, cfg.fit)
    seeds = [opts.seed * 1_000_003 + int(k) for k in keep]
    mask, std = predict_slices(pred, x, opts, seeds)
    native = channels.shape[1:3]
    mask = to_native(mask, native, pred.image_size, cfg.fit, "nearest")[:, 0]
    std = to_native(std, native, pred.image_size, cfg.fit, "bilinear")[:, 0]
    out_mask = np.zeros(channels.shape[1:], dtype=np.uint8)
    out_std = np.zeros(channels.shape[1:], dtype=np.float32)
    out_mask[..., keep] = np.moveaxis(mask.numpy(), 0, -1).astype(np.uint8)
    out_std[..., keep] = np.moveaxis(std.numpy(), 0, -1).astype(np.float32)
    return out_mask, out_std


def predict_picture(pred: Predictor, image: np.ndarray, opts: PredictOptions = PredictOptions(),
                    seed_index: int = 0, source: str | Path = "<array>") -> tuple[np.ndarray, np.ndarray]:
    """Segment a decoded picture (H,W[,C]) as the pairs dataset preprocesses it: (mask (H,W) bool, std (H,W))."""
    try:
        arr = to_channels(image, pred.in_channels, source)
    except DataError as exc:
        raise PredictError(f"the checkpoint expects {pred.in_channels} image channel(s): {exc}") from None
    x, _ = preprocess_picture(arr, None, pred.image_size, opts.diffusion)
    mask, std = predict_slices(pred, x[None], opts, [opts.seed * 1_000_003 + seed_index])
    native = arr.shape[1:3]
    mask = to_native(mask, native, pred.image_size, "resize", "nearest")[0, 0]
    std = to_native(std, native, pred.image_size, "resize", "bilinear")[0, 0]
    return mask.numpy() > 0.5, std.numpy()


# ------------------------------------------------------------------------------------ orientation
def canonical_to_native(arr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Undo `nib.as_closest_canonical` on a data array: RAS-ordered axes -> the file's own axis order."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform
    back = ornt_transform(axcodes2ornt(("R", "A", "S")), io_orientation(affine))
    return np.ascontiguousarray(apply_orientation(arr, back))


# ---------------------------------------------------------------------------------------- writing
def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path: str | Path, inputs: Sequence[str | Path] = (), force: bool = False) -> Path:
    """Refuse to write onto an input (always) or onto an existing file (unless force)."""
    path = Path(path)
    for src in inputs:
        if _same_file(path, Path(src)):
            raise PredictError(f"output {path} is the input file {src}; predict never overwrites its input")
    if path.is_dir():
        raise PredictError(f"output {path} is a folder; give a file name")
    if path.exists() and not force:
        raise PredictError(f"output {path} already exists; pass --force (force=True) to overwrite it")
    return path


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """`io_utils.atomic_write` keeping the output's extension (nibabel and PIL pick the format from it)."""
    _atomic_write(path, write, suffix=_suffix(Path(path)))


def _nifti_like(data: np.ndarray, ref, dtype, cal: tuple[float, float]):
    import nibabel as nib
    header = ref.header.copy()
    cls = ref.__class__ if isinstance(ref, (nib.Nifti1Image, nib.Nifti2Image)) else nib.Nifti1Image
    img = cls(data.astype(dtype), ref.affine, header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = cal
    return img


def write_nifti_like(path: str | Path, data: np.ndarray, ref, dtype=np.uint8) -> None:
    """Atomically save `data` (in the file's own axis order) with the reference image's affine and header."""
    import nibabel as nib
    cal = (0.0, 1.0) if np.dtype(dtype).kind in "ui" else (0.0, float(data.max()) if data.size else 0.0)
    img = _nifti_like(data, ref, dtype, cal)
    atomic_write(path, lambda tmp: nib.save(img, tmp))


def write_png_mask(path: str | Path, mask: np.ndarray) -> None:
    """Atomically save a boolean (H,W) mask as an 8-bit PNG with values {0,255}."""
    from PIL import Image
    img = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


# ---------------------------------------------------------------------------------- file-level API
def _is_nifti(p: Path) -> bool:
    return p.is_file() and NIFTI.search(p.name) is not None


def _is_picture(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTS


def _volume_config(pred: Predictor) -> VolumeConfig:
    """The brats: options the checkpoint was trained with (norm, clip, fit, modality names), else defaults."""
    from .data.factory import with_options
    from .data.spec import parse_spec
    try:
        spec = parse_spec(pred.data_spec)
    except DataError:
        return VolumeConfig()
    if spec.kind != "brats":
        return VolumeConfig()
    try:
        return with_options(VolumeConfig(), spec, pred.data_spec)
    except DataError:
        return VolumeConfig()


def subject_files(folder: str | Path, in_channels: int, modalities: Sequence[str] | None = None,
                  cfg: VolumeConfig | None = None) -> tuple[list[Path], Path | None]:
    """The modality files (in channel order) and the brain-mask file (or None) of one subject folder.

    Names come from `modalities`, else the training spec's, else the first known layout (BraTS
    2021, BraTS 2015) whose modality files are all present with `in_channels` of them.
    """
    folder = Path(folder)
    cfg = cfg or VolumeConfig()
    files = sorted(f.name for f in folder.iterdir() if NIFTI.search(f.name))
    names = list(modalities or cfg.modalities or ())
    brain_name = cfg.brain_mask
    if not names:
        layouts = [lay for lay in LAYOUTS.values() if all(match_file(folder, n) for n in lay.modalities)]
        fitting = [lay for lay in layouts if len(lay.modalities) == in_channels]
        if not layouts:
            raise PredictError(f"{folder}: cannot tell which files are the modalities (files: {', '.join(files)}); "
                               "pass --modalities NAME[,NAME...] in the order the checkpoint expects")
        layout = (fitting or layouts)[0]
        names = list(layout.modalities)
        brain_name = brain_name or layout.brain_mask
    if len(names) != in_channels:
        raise PredictError(f"{folder}: the checkpoint expects {in_channels} modalities (image channels), but "
                           f"{len(names)} were found/named ({', '.join(names)}); pass --modalities with {in_channels} names")
    paths = []
    for n in names:
        f = match_file(folder, n)
        if f is None:
            raise PredictError(f"{folder}: no NIfTI file for modality {n!r} (files: {', '.join(files)})")
        paths.append(f)
    if brain_name is None:                     # a known layout's brain mask, if the folder has one
        brain_name = next((lay.brain_mask for lay in LAYOUTS.values() if lay.brain_mask and match_file(folder, lay.brain_mask)), None)
    brain = match_file(folder, brain_name) if brain_name and brain_name.lower() != "none" else None
    return paths, brain


def predict_nifti(pred: Predictor, inputs: Sequence[str | Path], output: str | Path, uncertainty: str | Path | None = None,
                  brain_mask: str | Path | None = None, opts: PredictOptions = PredictOptions(), force: bool = False,
                  cfg: VolumeConfig | None = None) -> dict:
    """Per-modality NIfTI files of one subject (channel order) -> a uint8 NIfTI mask aligned with them.

    `brain_mask`: a NIfTI file (> 0.5 = brain) or None (any modality above its minimum, section 8 step 2).
    `uncertainty`: also write the ensemble std as float32 NIfTI (the consistency output only).
    """
    import nibabel as nib
    inputs = [Path(p) for p in inputs]
    cfg = cfg or _volume_config(pred)
    if len(inputs) != pred.in_channels:
        raise PredictError(f"the checkpoint expects {pred.in_channels} modalities (image channels), got "
                           f"{len(inputs)} file(s): {', '.join(str(p) for p in inputs)}")
    if uncertainty is not None and opts.output_kind != "consistency":
        raise PredictError("--uncertainty needs --output-kind consistency (the auxiliary head is deterministic)")
    for out in (output, uncertainty):
        if out is not None and NIFTI.search(Path(out).name) is None:
            raise PredictError(f"output {out} must end in .nii or .nii.gz")
    sources = inputs + ([Path(brain_mask)] if brain_mask else [])
    check_output(output, sources, force)
    if uncertainty is not None:
        check_output(uncertainty, sources, force)
        if _same_file(Path(uncertainty), Path(output)):
            raise PredictError(f"--uncertainty {uncertainty} is the same file as the mask output")
    chans = []
    for f in inputs:
        vol = read_nifti(f)
        if vol.ndim != 3:
            raise DataError(f"{f}: expected a 3-D volume, got shape {vol.shape}")
        if chans and vol.shape != chans[0].shape:
            raise DataError(f"{f}: shape {vol.shape} does not match {inputs[0].name} shape {chans[0].shape}")
        chans.append(vol)
    channels = np.stack(chans)
    brain = None
    if brain_mask is not None:
        bm = read_nifti(brain_mask)
        if bm.shape != chans[0].shape:
            raise DataError(f"{brain_mask}: brain mask shape {bm.shape} does not match image shape {chans[0].shape}")
        brain = bm > 0.5
        if not brain.any():
            raise DataError(f"{brain_mask}: the brain mask is empty")
    mask, std = predict_volume(pred, channels, brain, opts, cfg)
    ref = nib.load(str(inputs[0]))
    write_nifti_like(output, canonical_to_native(mask, ref.affine), ref, np.uint8)
    if uncertainty is not None:
        write_nifti_like(uncertainty, canonical_to_native(std, ref.affine), ref, np.float32)
    return {"output": str(output), "uncertainty": None if uncertainty is None else str(uncertainty),
            "inputs": [str(p) for p in inputs], "brain_mask": None if brain_mask is None else str(brain_mask),
            "shape": list(ref.shape), "foreground_voxels": int(mask.sum())}


def predict_subject(pred: Predictor, folder: str | Path, output: str | Path, uncertainty: str | Path | None = None,
                    modalities: Sequence[str] | None = None, brain_mask: str | Path | None = "auto",
                    opts: PredictOptions = PredictOptions(), force: bool = False) -> dict:
    """A subject folder (e.g. BraTS 2015 Flair_*, T1c_*, brainmask) -> NIfTI mask; see `predict_nifti`.

    brain_mask="auto" uses the layout's brain-mask file when the folder has one.
    """
    cfg = _volume_config(pred)
    files, auto_brain = subject_files(folder, pred.in_channels, modalities, cfg)
    bm = auto_brain if brain_mask == "auto" else (None if brain_mask in (None, "none") else brain_mask)
    return predict_nifti(pred, files, output, uncertainty, bm, opts, force, cfg)


def predict_png(pred: Predictor, image: str | Path, output: str | Path, opts: PredictOptions = PredictOptions(),
                force: bool = False, seed_index: int = 0) -> dict:
    """One picture -> a {0,255} PNG mask of the same size."""
    image, output = Path(image), Path(output)
    if output.suffix.lower() != ".png":
        raise PredictError(f"output {output} must end in .png")
    check_output(output, [image], force)
    mask, _ = predict_picture(pred, read_picture(image), opts, seed_index, image)
    write_png_mask(output, mask)
    return {"output": str(output), "input": str(image), "shape": list(mask.shape), "foreground_pixels": int(mask.sum())}


def _output_folder(folder: Path, out_folder: Path) -> None:
    if _same_file(folder, out_folder):
        raise PredictError(f"output folder {out_folder} is the input folder; predict never overwrites its input")
    if out_folder.exists() and not out_folder.is_dir():
        raise PredictError(f"output {out_folder} exists and is not a folder")
    if NIFTI.search(out_folder.name) or out_folder.suffix.lower() in IMAGE_EXTS:
        raise PredictError(f"output {out_folder} looks like a file; a folder of inputs needs an output folder")


def _batch(items: list, outputs: list[Path], folder: Path, force: bool, what: str) -> None:
    """Check a folder's planned outputs before writing any: distinct names, none an input, none existing."""
    if not items:
        raise PredictError(f"{folder}: no {what} found")
    if len(set(outputs)) != len(outputs):
        raise PredictError(f"{folder}: several {what} share a name, so their masks would collide")
    for item, out in zip(items, outputs):
        check_output(out, [item], force)


def _progress(items, desc: str, progress: bool):
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, disable=not progress or len(items) < 2)


def predict_png_folder(pred: Predictor, folder: str | Path, out_folder: str | Path, opts: PredictOptions = PredictOptions(),
                       force: bool = False, progress: bool = True) -> list[dict]:
    """Every picture in `folder` -> `out_folder/<stem>.png`; all outputs are checked before any is written."""
    folder, out_folder = Path(folder), Path(out_folder)
    _output_folder(folder, out_folder)
    images = sorted(p for p in folder.iterdir() if _is_picture(p))
    outputs = [out_folder / f"{p.stem}.png" for p in images]
    _batch(images, outputs, folder, force, f"pictures ({', '.join(IMAGE_EXTS)})")
    return [predict_png(pred, p, o, opts, force, i)
            for i, (p, o) in enumerate(_progress(list(zip(images, outputs)), "predict", progress))]


def _nifti_stem(path: Path) -> str:
    return NIFTI.sub("", path.name)


def predict_nifti_folder(pred: Predictor, folder: str | Path, out_folder: str | Path,
                         uncertainty: str | Path | None = None, modalities: Sequence[str] | None = None,
                         brain_mask: str | Path | None = "auto", opts: PredictOptions = PredictOptions(),
                         force: bool = False, progress: bool = True) -> list[dict]:
    """A folder of scans -> `out_folder/<name>.nii.gz` each (`uncertainty`: a folder for the std maps).

    The scans are the subject folders inside `folder` (one per subject, per-modality NIfTI files), or,
    for a single-channel checkpoint, the NIfTI files directly inside it (one volume each). Every output
    is checked before the first is written.
    """
    folder, out_folder = Path(folder), Path(out_folder)
    _output_folder(folder, out_folder)
    subjects = sorted(d for d in folder.iterdir() if d.is_dir() and any(_is_nifti(f) for f in d.iterdir()))
    files = sorted(f for f in folder.iterdir() if _is_nifti(f))
    if subjects:
        items, names = subjects, [d.name for d in subjects]
    elif files and pred.in_channels == 1:
        items, names = files, [_nifti_stem(f) for f in files]
    else:
        raise PredictError(f"{folder}: a folder of scans holds one subject folder per scan (or, for a 1-channel "
                           f"checkpoint, one NIfTI volume per scan); this checkpoint takes {pred.in_channels} channels")
    outputs = [out_folder / f"{n}.nii.gz" for n in names]
    std_dir = Path(uncertainty) if uncertainty is not None else None
    stds = [std_dir / f"{n}_std.nii.gz" for n in names] if std_dir is not None else [None] * len(items)
    _batch(items, outputs, folder, force, "scans")
    for item, s in zip(items, stds):
        if s is not None:
            check_output(s, [item], force)
    results = []
    for item, out, std in _progress(list(zip(items, outputs, stds)), "predict", progress):
        if item.is_dir():
            results.append(predict_subject(pred, item, out, std, modalities, brain_mask, opts, force))
        else:
            bm = None if brain_mask in ("auto", "none", None) else brain_mask
            results.append(predict_nifti(pred, [item], out, std, bm, opts, force))
    return results


def predict_path(pred: Predictor, inputs: Sequence[str | Path], output: str | Path, uncertainty: str | Path | None = None,
                 modalities: Sequence[str] | None = None, brain_mask: str | Path | None = "auto",
                 opts: PredictOptions = PredictOptions(), force: bool = False):
    """Dispatch on the input: subject folder or NIfTI files -> NIfTI; picture -> PNG; folder of pictures -> folder."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise PredictError("no input given")
    for p in paths:
        if not p.exists():
            raise PredictError(f"input {p} does not exist")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        has_nifti = any(_is_nifti(f) for f in folder.iterdir())
        many_volumes = pred.in_channels == 1 and not NIFTI.search(Path(output).name)
        if has_nifti and not many_volumes:
            return predict_subject(pred, folder, output, uncertainty, modalities, brain_mask, opts, force)
        if has_nifti or any(d.is_dir() and any(_is_nifti(f) for f in d.iterdir()) for d in folder.iterdir()):
            return predict_nifti_folder(pred, folder, output, uncertainty, modalities, brain_mask, opts, force)
        if any(_is_picture(f) for f in folder.iterdir()):
            if uncertainty is not None:
                raise PredictError("--uncertainty is written for NIfTI input only")
            return predict_png_folder(pred, folder, output, opts, force)
        raise PredictError(f"{folder}: neither NIfTI volumes nor pictures found")
    if all(_is_nifti(p) for p in paths):
        if modalities:
            raise PredictError("--modalities selects files inside a subject folder; with explicit files, list them in channel order")
        bm = None if brain_mask in ("auto", "none", None) else brain_mask
        return predict_nifti(pred, paths, output, uncertainty, bm, opts, force)
    if len(paths) == 1 and _is_picture(paths[0]):
        if uncertainty is not None:
            raise PredictError("--uncertainty is written for NIfTI input only")
        return predict_png(pred, paths[0], output, opts, force)
    raise PredictError("input must be one subject folder, one or more NIfTI files (channel order), one picture, "
                       f"a folder of pictures or a folder of subject folders; got {', '.join(str(p) for p in paths)}")


# ---------------------------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> None:
    """Register `python -m ctslib predict`."""
    from .cli import HELP_FMT
    p = subparsers.add_parser("predict", help="segment NIfTI volumes or PNG pictures with a checkpoint",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=HELP_FMT)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="a subject folder of per-modality NIfTI files, NIfTI file(s) in channel order, one picture "
                        "(PNG), a folder of pictures, or a folder of scans (subject folders; for a 1-channel "
                        "checkpoint also NIfTI volumes) with an output folder")
    p.add_argument("-i", "--input", dest="input_flags", metavar="PATH", nargs="+", action="extend", default=[],
                   help="the same as INPUT, as an option (README form: --input scan.png --output mask.png)")
    p.add_argument("-o", "--output", required=True, help="mask to write (.nii.gz for volumes, .png for a picture) "
                                                         "or an output folder for a folder of pictures")
    p.add_argument("--ckpt", required=True, help="checkpoint (OUT/ckpt.pt), EMA snapshot, or a pretrained name (e.g. lgg-tiny64)")
    p.add_argument("--weights", choices=["ema", "model"], default="ema", help="EMA (default) or online weights")
    p.add_argument("--modalities", default=None, help="comma-separated modality names inside a subject folder, in "
                                                      "channel order (default: the training spec's or the detected "
                                                      "layout's, e.g. Flair,T1c for BraTS 2015)")
    p.add_argument("--brain-mask", default="auto", help="brain-mask NIfTI for the normalisation; 'auto' = the "
                                                        "folder's layout brain mask if any, 'none' = voxels where "
                                                        "any modality is above its minimum")
    p.add_argument("--uncertainty", default=None, help="also write the ensemble std as float32 NIfTI to this path "
                                                       "(all zeros with --members 1)")
    p.add_argument("--levels", default="", help="multistep levels after sigma_max, comma-separated (choose on val); "
                                                "empty = one step")
    p.add_argument("--members", type=int, default=1, help="ensemble size E (mask = mean sample > threshold)")
    p.add_argument("--output-kind", choices=list(OUTPUT_KINDS), default="consistency",
                   help="which output to write: the consistency sample or the auxiliary head y_hat")
    p.add_argument("--slices", default="brain", help="axial slices to segment (canonical index): brain, all or A:B; "
                                                     "the others are written as background")
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik preprocessing (use if trained with it)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (inputs are never overwritten)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (minutes to compile; pays off "
                                                          "on many slices)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    import json
    import sys
    try:
        levels = tuple(float(x) for x in args.levels.split(",") if x.strip())
    except ValueError:
        print(f"ctslib: error: --levels {args.levels!r} is not a comma-separated list of numbers", file=sys.stderr)
        return 2
    inputs = list(args.inputs) + list(args.input_flags)
    if not inputs:
        print("ctslib: error: give the input as INPUT or --input PATH", file=sys.stderr)
        return 2
    try:
        opts = PredictOptions(levels=levels, members=args.members, seed=args.seed, output_kind=args.output_kind,
                              batch_size=args.batch_size, slices=args.slices,
                              diffusion=DiffusionConfig() if args.anisotropic else None)
        pred = load_predictor(args.ckpt, args.weights, args.device, compile=args.compile)
        modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
        result = predict_path(pred, inputs, args.output, args.uncertainty, modalities, args.brain_mask, opts, args.force)
    except (ValueError, FileNotFoundError) as exc:   # PredictError, DataError, unreadable checkpoint
        print(f"ctslib: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"checkpoint": str(args.ckpt), "step": pred.step, "weights": pred.weights,
                      "output_kind": opts.output_kind, "levels": list(levels), "members": opts.members,
                      "written": result}))
    return 0

"""File-level prediction: a subject folder, NIfTI files, a picture or a folder of them -> mask files.

Every planned output is checked before the first is written; inputs are never overwritten and an
existing output is refused unless ``force``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.errors import DataError
from ..data.pairs import IMAGE_EXTS
from ..data.readers import read_nifti, read_picture
from ..data.volumes import LAYOUTS, NIFTI, VolumeConfig, match_file
from .inference import PredictError, PredictOptions, Predictor, predict_picture, predict_volume
from .writers import _same_file, canonical_to_native, check_output, write_nifti_like, write_png_mask


# ---------------------------------------------------------------------------------- file-level API
def _is_nifti(p: Path) -> bool:
    return p.is_file() and NIFTI.search(p.name) is not None


def _is_picture(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTS


def _volume_config(pred: Predictor) -> VolumeConfig:
    """The brats: options the checkpoint was trained with (norm, clip, fit, modality names), else defaults."""
    from ..data.factory import with_options
    from ..data.spec import parse_spec
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
    write_nifti_like(output, canonical_to_native(mask, ref.affine), ref, np.uint8, force)
    if uncertainty is not None:
        write_nifti_like(uncertainty, canonical_to_native(std, ref.affine), ref, np.float32, force)
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
    write_png_mask(output, mask, force)
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


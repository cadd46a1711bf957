"""Writing predicted masks: NIfTI with the input's affine and header, PNG {0,255}; atomic, never over an input."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..io_utils import atomic_write as _atomic_write
from ..io_utils import output_problem
from .inference import PredictError


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
    if (problem := output_problem(path, force)) is not None:
        raise PredictError(f"output {path} {problem}")
    return path


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def atomic_write(path: str | Path, write: Callable[[str], None], force: bool = True) -> None:
    """`io_utils.atomic_write` keeping the output's extension (nibabel and PIL pick the format from it).

    Without `force` the final name is created exclusively: an output that appeared meanwhile is not replaced.
    """
    _atomic_write(path, write, suffix=_suffix(Path(path)), exclusive=not force)


def _nifti_like(data: np.ndarray, ref, dtype, cal: tuple[float, float]):
    import nibabel as nib
    header = ref.header.copy()
    cls = ref.__class__ if isinstance(ref, (nib.Nifti1Image, nib.Nifti2Image)) else nib.Nifti1Image
    img = cls(data.astype(dtype), ref.affine, header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = cal
    return img


def write_nifti_like(path: str | Path, data: np.ndarray, ref, dtype=np.uint8, force: bool = True) -> None:
    """Atomically save `data` (in the file's own axis order) with the reference image's affine and header."""
    import nibabel as nib
    cal = (0.0, 1.0) if np.dtype(dtype).kind in "ui" else (0.0, float(data.max()) if data.size else 0.0)
    img = _nifti_like(data, ref, dtype, cal)
    atomic_write(path, lambda tmp: nib.save(img, tmp), force)


def write_png_mask(path: str | Path, mask: np.ndarray, force: bool = True) -> None:
    """Atomically save a boolean (H,W) mask as an 8-bit PNG with values {0,255}."""
    from PIL import Image
    img = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"), force)


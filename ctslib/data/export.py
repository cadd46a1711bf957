"""Write one patient of the LGG slice layout as NIfTI volumes, to try `predict` on volumes.

The LGG set ships each axial slice as an RGB PNG (pre-contrast, FLAIR, post-contrast) with a mask
PNG; stacking a patient's consecutive slices gives three single-modality volumes and the expert
mask. The files carry no voxel size, so the affine is whatever the caller states (default 1 mm).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import DataError
from .readers import picture_mask, read_picture, to_channels

LGG_MODALITIES = ("pre-contrast", "flair", "post-contrast")   # the PNGs' R, G, B channels


def lgg_patient_to_nifti(root: str | Path, patient: str, out_dir: str | Path,
                         spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict:
    """Stack `patient`'s slices of ``root/slices.csv`` (in slice order) into NIfTI files in `out_dir`:
    ``<patient>_<modality>.nii.gz`` (float32) per channel and ``<patient>_mask.nii.gz`` (uint8).

    Returns {"files": the modality paths in channel order, "mask": path, "affine": 4x4 array, "slices": [...]}.
    """
    import nibabel as nib
    root, out_dir = Path(root), Path(out_dir)
    with open(root / "slices.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["patient"] == patient), key=lambda r: int(r["slice"]))
    if not rows:
        raise DataError(f"{root / 'slices.csv'}: no slices of patient {patient!r}")
    image = np.stack([to_channels(read_picture(root / r["image"]), 3, root / r["image"]) for r in rows], -1)
    mask = np.stack([picture_mask(read_picture(root / r["mask"]), root / r["mask"]) for r in rows], -1)
    affine = np.diag([*map(float, spacing), 1.0])
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for channel, name in enumerate(LGG_MODALITIES):
        files.append(out_dir / f"{patient}_{name}.nii.gz")
        nib.save(nib.Nifti1Image(image[channel].astype(np.float32), affine), str(files[-1]))
    mask_path = out_dir / f"{patient}_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), str(mask_path))
    return {"files": files, "mask": mask_path, "affine": affine, "slices": [int(r["slice"]) for r in rows]}

"""ctslib.data.export: an LGG patient's slices as NIfTI volumes (the quickstart's predict-on-a-volume demo)."""
import csv

import nibabel as nib
import numpy as np
import pytest

from ctslib.data import DataError
from ctslib.data.export import LGG_MODALITIES, lgg_patient_to_nifti
from ctslib.data.readers import read_picture


def test_patient_slices_stack_into_volumes(data_root, tmp_path):
    root = data_root / "lgg"
    with open(root / "slices.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    patient = rows[0]["patient"]
    mine = sorted((r for r in rows if r["patient"] == patient), key=lambda r: int(r["slice"]))
    vol = lgg_patient_to_nifti(root, patient, tmp_path, spacing=(0.5, 0.5, 2.0))
    assert [p.name for p in vol["files"]] == [f"{patient}_{m}.nii.gz" for m in LGG_MODALITIES]
    assert vol["slices"] == [int(r["slice"]) for r in mine]
    flair = nib.load(str(vol["files"][1]))
    assert np.allclose(flair.affine, np.diag([0.5, 0.5, 2.0, 1.0]))
    k = len(mine) // 2
    png = read_picture(root / mine[k]["image"])
    assert np.array_equal(np.asarray(flair.dataobj)[:, :, k], png[:, :, 1].astype(np.float32))   # G = FLAIR
    mask = np.asarray(nib.load(str(vol["mask"])).dataobj)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert mask[:, :, k].sum() == (read_picture(root / mine[k]["mask"]) > 0).sum()
    with pytest.raises(DataError, match="no slices of patient 'nobody'"):
        lgg_patient_to_nifti(root, "nobody", tmp_path)

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

Files are written atomically (temporary file, then a rename; a new output is created exclusively, so two
runs racing for it cannot both win); an input is never overwritten and an existing output is refused unless ``force=True`` (``--force``).
"""
from .files import (predict_nifti, predict_nifti_folder, predict_path, predict_png, predict_png_folder,
                    predict_subject, subject_files)
from .inference import (OUTPUT_KINDS, PredictError, PredictOptions, Predictor, load_predictor, predict_picture,
                        predict_slices, predict_volume)
from .writers import atomic_write, canonical_to_native, check_output, write_nifti_like, write_png_mask

__all__ = ["OUTPUT_KINDS", "PredictError", "PredictOptions", "Predictor", "atomic_write", "canonical_to_native",
           "check_output", "load_predictor", "predict_nifti", "predict_nifti_folder", "predict_path", "predict_picture",
           "predict_png", "predict_png_folder", "predict_slices", "predict_subject", "predict_volume", "subject_files",
           "write_nifti_like", "write_png_mask"]

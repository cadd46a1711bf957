"""File readers that validate as they read; every problem is a DataError naming the file.

Mask rules (docs/method.md section 8):
- label maps (BraTS ``seg``, ``mask=labels``): finite, non-negative integers; label > 0 is
  foreground (whole tumour merges labels 1, 2, 4);
- binary masks (PNG, default): values must be a subset of {0, 1} or {0, M} with M the dtype's
  maximum (255 for 8-bit); anything else is rejected rather than guessed;
- ``mask=threshold``: anti-aliased masks; foreground = value > M/2.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .errors import DataError, data_error

MASK_RULES = ("binary", "labels", "threshold")
# Input size bounds, checked from the file header before any pixel is decoded: a few-KB PNG can claim
# 8000 x 8000 pixels (gigabytes once decoded). `pixel_limit` (CLI: --max-pixels) raises or lowers MAX_PIXELS.
MAX_PIXELS = 50_000_000
MAX_VOXELS = 1_000_000_000


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None):
    """Within the block, pictures may have up to `max_pixels` pixels (None: keep the current limit)."""
    global MAX_PIXELS
    previous = MAX_PIXELS
    if max_pixels is not None:
        MAX_PIXELS = int(max_pixels)
    try:
        yield MAX_PIXELS
    finally:
        MAX_PIXELS = previous


# --------------------------------------------------------------------------------- NIfTI volumes
def read_nifti(path: str | Path, dtype=np.float32) -> np.ndarray:
    """Load a NIfTI file in closest-canonical (RAS) orientation as a finite ``dtype`` array."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise data_error(path, "file not found")
    try:
        img = nib.load(str(path))
        voxels = int(np.prod(img.shape, dtype=np.float64)) if img.shape else 0
        if voxels > MAX_VOXELS:
            raise data_error(path, f"volume of shape {tuple(img.shape)} has {voxels:,} voxels, more than the limit "
                                   f"{MAX_VOXELS:,}")
        img = nib.as_closest_canonical(img)
        arr = np.asarray(img.dataobj, dtype=dtype)
    except DataError:
        raise
    except Exception as exc:  # nibabel raises many types for truncated/corrupt files
        raise data_error(path, f"cannot read NIfTI ({type(exc).__name__}: {exc})") from None
    check_finite(arr, path)
    return arr


def nifti_spacing(path: str | Path) -> tuple[float, float, float]:
    """Voxel size (mm) along the closest-canonical axes of a NIfTI file, from its header only."""
    import nibabel as nib

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        return tuple(float(z) for z in img.header.get_zooms()[:3])
    except Exception as exc:
        raise data_error(path, f"cannot read NIfTI header ({type(exc).__name__}: {exc})") from None


def check_finite(arr: np.ndarray, path: str | Path) -> None:
    """Reject NaN or inf intensities."""
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        raise data_error(path, f"contains non-finite intensities ({n_nan} NaN, {n_inf} inf)")


def labels_to_mask(labels: np.ndarray, path: str | Path) -> np.ndarray:
    """Whole-tumour mask from a label map: label > 0 is foreground; labels must be integers >= 0."""
    check_finite(labels, path)
    if labels.size and labels.min() < 0:
        raise data_error(path, f"label map has negative values (min {labels.min():g}); labels must be integers >= 0, > 0 is foreground")
    if np.issubdtype(labels.dtype, np.floating) and not np.array_equal(labels, np.round(labels)):
        bad = labels[labels != np.round(labels)]
        raise data_error(path, f"label map has non-integer values (e.g. {bad.flat[0]:g}); labels must be integers >= 0, > 0 is foreground")
    return labels > 0


# ------------------------------------------------------------------------------------- 2-D images
def read_picture(path: str | Path) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF/BMP/GIF into a numpy array (H,W) or (H,W,C) with its native dtype."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise data_error(path, "file not found")
    pil_guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None   # our own limit below replaces PIL's
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise data_error(path, f"image is {width}x{height} = {width * height:,} pixels, more than the limit "
                                       f"{MAX_PIXELS:,} (raise it with --max-pixels)")
            if im.mode == "P":                       # palette (GIF masks): use the palette indices' colours
                im = im.convert("RGB" if "transparency" not in im.info else "RGBA")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise data_error(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_guard
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise data_error(path, f"unsupported image shape {arr.shape}")
    check_finite(arr, path)
    return arr


def picture_channels(arr: np.ndarray) -> int:
    """Colour channels of a decoded picture, not counting alpha: 1 (grey) or 3 (colour), as `to_channels` sees it."""
    have = 1 if arr.ndim == 2 else arr.shape[2]
    return have - 1 if have in (2, 4) else have


def to_channels(arr: np.ndarray, channels: int, path: str | Path) -> np.ndarray:
    """Return (C,H,W) with ``channels`` channels: drop alpha, grey<->RGB as needed."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] in (2, 4):                        # grey+alpha or RGBA: drop alpha
        arr = arr[:, :, : arr.shape[2] - 1]
    have = arr.shape[2]
    if have == channels:
        out = arr
    elif channels == 1 and have == 3:
        if (arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all():
            out = arr[:, :, :1]
        else:                                         # ITU-R 601 luma, as PIL's convert("L")
            out = (arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
            out = out.astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else out
    elif channels == 3 and have == 1:
        out = np.repeat(arr, 3, axis=2)
    else:
        raise data_error(path, f"image has {have} channels, expected {channels}")
    return np.ascontiguousarray(np.moveaxis(out, 2, 0))


def picture_mask(arr: np.ndarray, path: str | Path, rule: str = "binary") -> np.ndarray:
    """Boolean (H,W) mask from a decoded mask picture under ``rule`` (see module docstring)."""
    if rule not in MASK_RULES:
        raise ValueError(f"mask rule must be one of {MASK_RULES}, got {rule!r}")
    if arr.ndim == 3:
        arr = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1]
        if not all((arr[:, :, c] == arr[:, :, 0]).all() for c in range(1, arr.shape[2])):
            raise data_error(path, "mask is a colour image with different channels; expected a grey or binary mask")
        arr = arr[:, :, 0]
    if rule == "labels":
        return labels_to_mask(arr, path)
    top = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    if rule == "threshold":
        return arr > top / 2
    values = np.unique(arr)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, top}):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise data_error(
            path,
            f"non-binary mask values [{shown}]; a binary mask holds only 0 and {top:g} (or 0 and 1). "
            "For label maps use the option mask=labels (label > 0 is foreground); for anti-aliased "
            "masks mask=threshold",
        )
    return arr > 0


def check_same_shape(image_shape: tuple, mask_shape: tuple, image_path, mask_path) -> None:
    """Image and mask must share (H, W)."""
    if tuple(image_shape) != tuple(mask_shape):
        raise data_error(mask_path, f"mask shape {tuple(mask_shape)} does not match image {image_path} shape {tuple(image_shape)}")

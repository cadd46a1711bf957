"""Deterministic preprocessing (docs/method.md section 8, steps 2-4).

Order for volumes: percentile clip -> map to [0,1] by the clip range -> optional Perona-Malik
diffusion per slice -> z-score over brain voxels (background 0) -> resize or pad.
Order for 2-D pictures (ultrasound, dermoscopy, LGG PNG): scale to [0,1] -> pad to a square ->
optional diffusion -> z-score per channel -> resize. Masks are never diffused and stay exactly
binary: they are resized with nearest neighbour only.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-6


@contextmanager
def single_thread():
    """Run small per-item torch ops on one intra-op thread (restored afterwards).

    A 256x256 picture is too small to gain from torch's thread pool, and on a busy machine the
    pool's synchronisation makes such ops many times slower; DataLoader workers are single-threaded
    already, this gives the main process the same behaviour.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- diffusion (step 3)
@dataclass(frozen=True)
class DiffusionConfig:
    """Perona-Malik anisotropic diffusion; defaults from docs/method.md section 8 step 3.

    kappa is on the [0,1] intensity scale (0.2 ~ 50 of 255); gamma <= 0.25 for stability;
    option 1: g(s) = exp(-(s/kappa)^2), option 2: g(s) = 1/(1+(s/kappa)^2).
    device: where batched volume work runs ("auto" = CUDA when available).
    """

    kappa: float = 0.2
    gamma: float = 0.1
    iterations: int = 5
    option: int = 1
    device: str = "auto"

    def key(self) -> str:
        """Cache key part: everything that changes the result (not the device)."""
        return f"pm(k={self.kappa!r},g={self.gamma!r},n={self.iterations},o={self.option})"


def _conductance(grad: torch.Tensor, kappa: float, option: int) -> torch.Tensor:
    """Perona-Malik edge-stopping function g(|grad I|) (section 8 step 3)."""
    r = (grad / kappa) ** 2
    return torch.exp(-r) if option == 1 else 1.0 / (1.0 + r)


def anisotropic_diffusion(
    x: torch.Tensor, kappa: float = 0.2, gamma: float = 0.1, iterations: int = 5, option: int = 1
) -> torch.Tensor:
    """Perona-Malik diffusion of every (H,W) plane of x (B,C,H,W), vectorised, on x's device.

    I <- I + gamma * sum_{d in N,S,E,W} g(grad_d I) grad_d I, zero flux across the border
    (so the mean of each plane is preserved). Implements docs/method.md section 8 step 3.
    """
    if x.ndim != 4:
        raise ValueError(f"anisotropic_diffusion expects (B,C,H,W), got shape {tuple(x.shape)}")
    if option not in (1, 2):
        raise ValueError(f"option must be 1 (exp) or 2 (rational), got {option}")
    if kappa <= 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    if not 0 < gamma <= 0.25:
        raise ValueError(f"gamma must be in (0, 0.25] for stability, got {gamma}")
    y = x.float().clone() if x.dtype != torch.float64 else x.clone()
    for _ in range(int(iterations)):
        dv = y[..., 1:, :] - y[..., :-1, :]                 # south difference of each row pair
        dh = y[..., :, 1:] - y[..., :, :-1]                 # east difference of each column pair
        fv = _conductance(dv, kappa, option) * dv           # flux between vertical neighbours
        fh = _conductance(dh, kappa, option) * dh
        # each pixel gains the flux from its south/east neighbour and loses it to north/west
        y = y + gamma * (F.pad(fv, (0, 0, 0, 1)) - F.pad(fv, (0, 0, 1, 0))
                         + F.pad(fh, (0, 1, 0, 0)) - F.pad(fh, (1, 0, 0, 0)))
    return y


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def diffuse_numpy(planes: np.ndarray, cfg: DiffusionConfig, device: str | None = None) -> np.ndarray:
    """Diffuse a (B,C,H,W) float32 numpy stack on cfg.device (or ``device``), return numpy."""
    dev = resolve_device(device or cfg.device)
    t = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).to(dev)
    out = anisotropic_diffusion(t, cfg.kappa, cfg.gamma, cfg.iterations, cfg.option)
    return out.cpu().numpy()


# ------------------------------------------------------------------------- intensities (step 2)
def clip_percentiles(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The (low, high) percentiles of ``values`` (the brain voxels of one modality)."""
    if values.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(values, (low, high))
    return float(lo), float(hi)


def to_unit_range(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip x to [lo, hi] and map it linearly to [0, 1] (all zeros when hi == lo)."""
    if hi - lo <= EPS:
        return np.zeros_like(x, dtype=np.float32)
    return ((np.clip(x, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def brain_mask(channels: np.ndarray) -> np.ndarray:
    """Brain voxels: any modality above its own minimum (section 8 step 2).

    For raw BraTS intensities the minimum is the background 0, so this is "any modality > 0";
    it also works for data already shifted so the background is a negative constant.
    """
    mins = channels.reshape(channels.shape[0], -1).min(axis=1)
    return (channels > mins.reshape((-1,) + (1,) * (channels.ndim - 1))).any(axis=0)


def zscore_volume(
    channels: np.ndarray,
    brain: np.ndarray | None = None,
    clip: tuple[float, float] = (0.5, 99.5),
    norm: str = "zscore",
    diffusion: DiffusionConfig | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Per-volume, per-modality normalisation of ``channels`` (C, X, Y[, Z]); section 8 step 2.

    Clip each modality to the ``clip`` percentiles of the brain voxels, map to [0,1] by the clip
    range, optionally diffuse each axial slice, then z-score with the brain voxels
    (``norm="zscore"``, background 0) or map to [-1,1] (``norm="minmax"``, background -1).
    """
    if norm not in ("zscore", "minmax"):
        raise ValueError(f"norm must be 'zscore' or 'minmax', got {norm!r}")
    if brain is None:
        brain = brain_mask(channels)
    unit = np.empty(channels.shape, dtype=np.float32)
    for c in range(channels.shape[0]):
        lo, hi = clip_percentiles(channels[c][brain], *clip)
        unit[c] = to_unit_range(channels[c], lo, hi)
    if diffusion is not None:
        unit = diffuse_slices(unit, diffusion, device)
    out = np.empty_like(unit)
    for c in range(unit.shape[0]):
        if norm == "zscore":
            vals = unit[c][brain]
            mean, std = (float(vals.mean()), float(vals.std())) if vals.size else (0.0, 1.0)
            out[c] = (unit[c] - mean) / max(std, EPS)
            out[c][~brain] = 0.0
        else:
            out[c] = 2.0 * unit[c] - 1.0
            out[c][~brain] = -1.0
    return out


def diffuse_slices(unit: np.ndarray, cfg: DiffusionConfig, device: str | None = None) -> np.ndarray:
    """Diffuse (C,X,Y) or (C,X,Y,Z) per axial slice and channel, all slices as one batch."""
    if unit.ndim == 3:
        return diffuse_numpy(unit[None], cfg, device)[0]
    stack = np.moveaxis(unit, -1, 0)                   # (Z, C, X, Y)
    return np.ascontiguousarray(np.moveaxis(diffuse_numpy(stack, cfg, device), 0, -1))


def zscore_image(x: torch.Tensor) -> torch.Tensor:
    """Z-score each channel of one picture (C,H,W) over its own pixels (section 8 step 2)."""
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(dim=1).view(-1, 1, 1)
    std = flat.std(dim=1, unbiased=False).clamp_min(EPS).view(-1, 1, 1)
    return (x - mean) / std


def scale_to_unit(arr: np.ndarray) -> np.ndarray:
    """Scale a decoded picture to [0,1]: integers by their dtype range, floats by min-max."""
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    a = arr.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi - lo > EPS else np.zeros_like(a)


# ----------------------------------------------------------------------------- geometry (step 4)
def pad_to_square(x: torch.Tensor, size: int | None = None, value: float = 0.0) -> torch.Tensor:
    """Zero-pad (..., H, W) centrally to a square of side max(H, W) (or ``size`` if larger)."""
    h, w = x.shape[-2:]
    side = max(h, w, size or 0)
    top, left = (side - h) // 2, (side - w) // 2
    if side == h == w:
        return x
    return F.pad(x, (left, side - w - left, top, side - h - top), value=value)


def resize_image(x: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of (C,H,W) or (B,C,H,W) to size x size.

    ``antialias`` widens the bilinear kernel when shrinking (e.g. LGG 256 -> 64) so that thin
    structures are averaged rather than skipped; it has no effect when enlarging.
    """
    squeeze = x.ndim == 3
    y = x[None] if squeeze else x
    if tuple(y.shape[-2:]) != (size, size):
        y = F.interpolate(y.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return y[0] if squeeze else y


def resize_mask(m: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour resize of a binary mask (C,H,W) or (B,C,H,W); values stay exactly {0,1}."""
    squeeze = m.ndim == 3
    y = m[None] if squeeze else m
    if tuple(y.shape[-2:]) != (size, size):
        y = F.interpolate(y.float(), size=(size, size), mode="nearest-exact")
    y = (y > 0.5).float()
    return y[0] if squeeze else y


def fit_to_size(image: torch.Tensor, mask: torch.Tensor, size: int, fit: str = "resize"):
    """Bring (…,C,H,W) image and mask to size x size: ``resize`` (pad to square, then resize) or
    ``pad`` (zero-pad only; exactly invertible, e.g. BraTS 240 -> 256)."""
    if fit == "pad":
        if max(image.shape[-2:]) > size:
            raise ValueError(f"fit='pad' needs image_size >= {max(image.shape[-2:])}, got {size}")
        return pad_to_square(image, size), pad_to_square(mask, size)
    if fit != "resize":
        raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
    return resize_image(pad_to_square(image), size), resize_mask(pad_to_square(mask), size)


def to_native(maps: torch.Tensor, native: tuple[int, int], image_size: int, fit: str = "resize",
              mode: str = "nearest") -> torch.Tensor:
    """Invert `fit_to_size` (docs/evaluation.md section 5: back to the native grid): (..., size, size) -> (..., H, W).

    ``resize``: resize to the padded square max(H, W), then crop the padding; ``pad``: crop only.
    Nearest neighbour for masks (values stay exactly {0,1}) or bilinear for continuous maps.
    """
    if fit not in ("resize", "pad"):
        raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
    h, w = native
    side = max(h, w) if fit == "resize" else max(h, w, image_size)
    if tuple(maps.shape[-2:]) != (side, side):
        if mode == "nearest":
            maps = resize_mask(maps, side)
        else:
            squeeze = maps.ndim == 3
            y = maps[None] if squeeze else maps
            y = F.interpolate(y.float(), size=(side, side), mode="bilinear", align_corners=False)
            maps = y[0] if squeeze else y
    top, left = (side - h) // 2, (side - w) // 2          # the offsets pad_to_square used
    return maps[..., top:top + h, left:left + w]


# ------------------------------------------------------------------------------- whole pipelines
def preprocess_picture(image: np.ndarray, mask: np.ndarray | None, size: int,
                       diffusion: DiffusionConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoded picture (C,H,W) and its mask (H,W) (None: an empty one) through the 2-D order of the
    module docstring: scale to [0,1] -> pad to a square -> optional diffusion -> z-score -> resize.
    Returns (image (C,size,size), mask (1,size,size))."""
    x = torch.from_numpy(scale_to_unit(image))
    m = torch.zeros((1,) + image.shape[1:]) if mask is None else torch.from_numpy(mask.astype(np.float32))[None]
    x, m = pad_to_square(x), pad_to_square(m)
    if diffusion is not None:
        d = diffusion
        x = anisotropic_diffusion(x[None], d.kappa, d.gamma, d.iterations, d.option)[0]
    return fit_to_size(zscore_image(x), m, size, "resize")


def slices_to_size(norm: np.ndarray, mask: np.ndarray | None, keep: np.ndarray, size: int,
                   fit: str = "resize") -> tuple[torch.Tensor, torch.Tensor]:
    """Axial slices ``keep`` of a normalised volume (C,X,Y,Z) and its mask (X,Y,Z) (None: empty),
    brought to size x size: (images (S,C,size,size), masks (S,1,size,size))."""
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(norm[..., keep], -1, 0)))          # (S,C,X,Y)
    if mask is None:
        m = torch.zeros((len(keep), 1) + x.shape[-2:])
    else:
        m = torch.from_numpy(np.ascontiguousarray(np.moveaxis(mask[..., keep], -1, 0)))[:, None].float()
    return fit_to_size(x, m, size, fit)

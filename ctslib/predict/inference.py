"""Inference on preprocessed arrays: a checkpoint as a `Predictor`, slices / volumes / pictures in, masks out.

Volumes are normalised as the dataset path does (docs/method.md section 8) and each slice is segmented
with ``ctslib.sampling.segment`` (one step, multistep levels, an ensemble); results are brought back to
the native in-plane grid. File reading and writing live in `ctslib.predict.files`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.errors import DataError
from ..data.preprocess import DiffusionConfig, preprocess_picture, slices_to_size, to_native, zscore_volume
from ..data.preprocess import brain_mask as default_brain
from ..data.readers import picture_channels, to_channels
from ..data.volumes import VolumeConfig
from ..device import autocast, modules_in_layout, pick_device, use_channels_last
from ..sampling import derive_seed, segment

OUTPUT_KINDS = ("consistency", "aux")
MIN_SIDE = 16   # smallest picture side (px) predict accepts: below it there is nothing to segment


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
    notify: Callable[[str], None] | None = None  # told about silent conversions (e.g. grey -> 3 channels)

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
    from ..pretrained import load_model
    if weights not in ("ema", "model"):
        raise PredictError(f"weights must be 'ema' or 'model', got {weights!r}")
    dev = pick_device(device)
    model, info = load_model(ckpt, weights, map_location="cpu")
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
    if min(channels.shape[1:3]) < MIN_SIDE:
        raise PredictError(f"volume slices are {channels.shape[1]}x{channels.shape[2]} voxels; predict needs at least "
                           f"{MIN_SIDE}x{MIN_SIDE}")
    if brain is None:
        brain = default_brain(channels)
    norm = zscore_volume(channels, brain, cfg.clip, cfg.norm, opts.diffusion)
    keep = _slice_selection(opts.slices, brain)
    x, _ = slices_to_size(norm, None, keep, pred.image_size, cfg.fit)
    seeds = [derive_seed(opts.seed, int(k)) for k in keep]
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
    """Segment a decoded picture (H,W[,C]) as the pairs dataset preprocesses it: (mask (H,W) bool, std (H,W)).

    Pictures smaller than MIN_SIDE pixels on a side are refused; a grey <-> colour conversion to the
    checkpoint's channel count is reported through ``opts.notify``.
    """
    if min(image.shape[:2]) < MIN_SIDE:
        raise PredictError(f"{source}: image is {image.shape[1]}x{image.shape[0]} px; predict needs at least "
                           f"{MIN_SIDE}x{MIN_SIDE}")
    have = picture_channels(image)
    if opts.notify is not None and have != pred.in_channels and {have, pred.in_channels} == {1, 3}:
        how = "repeated to 3 channels" if have == 1 else "converted to grey (luma)"
        opts.notify(f"{source}: {'grey' if have == 1 else 'colour'} image {how} for a {pred.in_channels}-channel "
                    "checkpoint")
    try:
        arr = to_channels(image, pred.in_channels, source)
    except DataError as exc:
        raise PredictError(f"the checkpoint expects {pred.in_channels} image channel(s): {exc}") from None
    x, _ = preprocess_picture(arr, None, pred.image_size, opts.diffusion)
    mask, std = predict_slices(pred, x[None], opts, [derive_seed(opts.seed, seed_index)])
    native = arr.shape[1:3]
    mask = to_native(mask, native, pred.image_size, "resize", "nearest")[0, 0]
    std = to_native(std, native, pred.image_size, "resize", "bilinear")[0, 0]
    return mask.numpy() > 0.5, std.numpy()



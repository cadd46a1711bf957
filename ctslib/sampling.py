"""Sampling the consistency model (docs/method.md section 3).

- one step: y = clamp(f_theta(sigma_max z, sigma_max; x^d), -1, 1)
- multistep: CM Algorithm 1 over descending levels tau_1 = sigma_max > ... > tau_S > sigma_min
- ensemble of E samples: mean, foreground probability, std and vote-variance uncertainty maps.
Every call also returns the auxiliary-head probability y_hat (deterministic; no sampling uncertainty).
Cost: `count_denoiser_calls` and `time_sampling` (docs/method.md section 3.6).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .masks import MaskCoding, mask_coding
from .model import CTSModel

# Seed strides: derive_seed(seed, i, stride) = seed * stride + i. Fixed numbers, so every stream stays reproducible;
# 1_000_003 is a prime larger than any step or item count, so the streams of two seeds never overlap.
INDEX_STRIDE = 1_000_003      # per item (evaluation, prediction), per training step, per multistep level
EPOCH_STRIDE = 7_919         # the training batches' per-epoch permutation
MEMBER_STRIDE = 101          # the members of an ensemble


@dataclass
class Segmentation:
    """What one sampling call returns, all (B,1,H,W) float32 on the model's device."""
    sample_mean: torch.Tensor          # ybar: mean of the E consistency samples, in mask units
    prob: torch.Tensor                 # foreground probability p from ybar
    mask: torch.Tensor                 # the consistency mask (ybar > threshold), {0,1}
    std: torch.Tensor                  # std over the E samples (0 for E = 1)
    vote_variance: torch.Tensor        # q(1-q), q = fraction of members voting foreground (<= 0.25)
    aux_prob: torch.Tensor | None      # y_hat of the image encoder head
    aux_mask: torch.Tensor | None      # y_hat > 0.5
    steps: int
    members: int


def derive_seed(seed: int, index: int, stride: int = INDEX_STRIDE) -> int:
    """The seed of draw `index` of the stream that `seed` starts: seed * stride + index."""
    return seed * stride + index


def seeded_noise(shape: Sequence[int], seeds: Sequence[int], device) -> torch.Tensor:
    """z ~ N(0, I) of `shape` with one seeded torch.Generator per sample, so a slice's noise never depends on its batch."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in gens]).to(device)


@torch.no_grad()
def consistency_sample(model: CTSModel, image: torch.Tensor, levels: Sequence[float] | None = None,
                       seeds: Sequence[int] | None = None, encoded=None) -> torch.Tensor:
    """CM Algorithm 1: x0 = f(sigma_max z, sigma_max); for tau_s: x = x0 + sqrt(tau^2 - sigma_min^2) z_s, x0 = f(x, tau_s).

    levels: descending noise levels after sigma_max (empty or None = one step). Returns clamp(x0, -1, 1).
    """
    cfg = model.cfg
    b, _, h, w = image.shape
    seeds = list(range(b)) if seeds is None else list(seeds)
    if encoded is None:
        encoded = model.encode(image)
    x = cfg.sigma_max * seeded_noise((b, 1, h, w), seeds, image.device)
    sigma = torch.full((b,), cfg.sigma_max, device=image.device, dtype=torch.float64)
    x0 = model(x, sigma, image, encoded=encoded).denoised.clamp(-1, 1)
    for s, tau in enumerate(levels or ()):
        if not cfg.sigma_min < tau < cfg.sigma_max:
            raise ValueError(f"multistep level {tau} must lie in (sigma_min, sigma_max)")
        z = seeded_noise((b, 1, h, w), [derive_seed(seed, s + 1) for seed in seeds], image.device)
        x = x0 + math.sqrt(tau**2 - cfg.sigma_min**2) * z
        x0 = model(x, torch.full((b,), tau, device=image.device, dtype=torch.float64), image, encoded=encoded).denoised.clamp(-1, 1)
    return x0


@torch.no_grad()
def segment(model: CTSModel, image: torch.Tensor, levels: Sequence[float] | None = None, members: int = 1,
            seeds: Sequence[int] | None = None, mask_encoding: str | MaskCoding = "pm1", vote: bool = False) -> Segmentation:
    """Segment a batch: E consistency samples (each 1 + len(levels) network evaluations) and the aux head.

    `mask_encoding` says how the model was trained to write masks (masks.py): it sets the threshold and probability."""
    b = image.shape[0]
    seeds = list(range(b)) if seeds is None else list(seeds)
    encoded = model.encode(image)
    coding = mask_coding(mask_encoding)
    thr = coding.threshold
    samples = torch.stack([consistency_sample(model, image, levels, [derive_seed(s, e, MEMBER_STRIDE) for s in seeds], encoded)
                           for e in range(members)])  # (E,B,1,H,W)
    mean = samples.mean(0)
    votes = (samples > thr).float()
    q = votes.mean(0)
    mask = (q > 0.5).float() if vote else (mean > thr).float()
    aux_prob = None if encoded is None else torch.sigmoid(encoded[1].float())
    return Segmentation(
        sample_mean=mean, prob=coding.probability(mean), mask=mask,
        std=samples.std(0, unbiased=False), vote_variance=q * (1 - q),
        aux_prob=aux_prob, aux_mask=None if aux_prob is None else (aux_prob > 0.5).float(),
        steps=1 + len(levels or ()), members=members)


# ------------------------------------------------------------------------------------ cost
def count_denoiser_calls(model, fn) -> tuple[int, object]:
    """(number of denoiser g forward passes, result) while running ``fn()``: the sampling cost."""
    calls = []
    hook = model.g.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = fn()
    finally:
        hook.remove()
    return len(calls), result


def time_sampling(model, images: torch.Tensor, settings: dict[str, dict], repeats: int = 5) -> list[dict]:
    """Wall time of ``segment(model, images, **kwargs)`` per setting: one warm-up call, then the
    median of ``repeats`` timed calls, with device synchronisation and no data loading (docs/method.md section 3.6)."""
    device = next(model.parameters()).device
    images = images.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for name, kwargs in settings.items():
        calls, _ = count_denoiser_calls(model, lambda: segment(model, images, **kwargs))     # warm-up
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            segment(model, images, **kwargs)
            sync()
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        rows.append({"sampler": name, "network_evals": calls, "batch": len(images), "ms_per_batch": ms,
                     "ms_per_image": ms / len(images), "device": str(device), "threads": torch.get_num_threads()})
    return rows

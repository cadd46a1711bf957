"""Preprocessing (docs/method.md section 8 steps 2-4): diffusion, normalisation, resizing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctslib.data.augment import AugmentConfig, augment_pair, rotate_pair
from ctslib.data.preprocess import (
    DiffusionConfig, anisotropic_diffusion, brain_mask, clip_percentiles, diffuse_slices, fit_to_size,
    pad_to_square, resize_image, resize_mask, scale_to_unit, zscore_image, zscore_volume,
)


def reference_diffusion(img: np.ndarray, kappa: float, gamma: float, iterations: int, option: int) -> np.ndarray:
    """Loop-by-pixel Perona-Malik with zero flux at the border (independent of the torch code)."""
    I = img.astype(np.float64).copy()
    h, w = I.shape
    g = (lambda s: math.exp(-((s / kappa) ** 2))) if option == 1 else (lambda s: 1.0 / (1.0 + (s / kappa) ** 2))
    for _ in range(iterations):
        new = I.copy()
        for y in range(h):
            for x in range(w):
                total = 0.0
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        d = I[yy, xx] - I[y, x]
                        total += g(d) * d
                new[y, x] = I[y, x] + gamma * total
        I = new
    return I


@pytest.mark.parametrize("option", [1, 2])
def test_diffusion_matches_pixel_loop(option):
    img = np.random.default_rng(option).random((9, 11))
    ref = reference_diffusion(img, 0.2, 0.15, 4, option)
    got = anisotropic_diffusion(torch.from_numpy(img)[None, None], 0.2, 0.15, 4, option)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_diffusion_properties():
    gen = torch.Generator().manual_seed(0)
    const = torch.full((2, 3, 16, 16), 0.7)
    assert torch.equal(anisotropic_diffusion(const), const)
    step = torch.zeros(1, 1, 32, 32)
    step[..., 16:] = 1.0
    noisy = step + 0.05 * torch.randn(step.shape, generator=gen)
    out = anisotropic_diffusion(noisy, kappa=0.2, gamma=0.2, iterations=10)
    assert torch.allclose(out.mean(dim=(-2, -1)), noisy.mean(dim=(-2, -1)), atol=1e-6)   # zero flux: mean kept
    flat = (slice(None), slice(None), slice(4, 28), slice(2, 12))
    assert out[flat].std() < 0.6 * noisy[flat].std()                                  # noise smoothed
    assert (out[..., 17:] .mean() - out[..., :15].mean()) > 0.95                      # edge kept
    batch = torch.rand(4, 2, 20, 24, generator=gen)
    one_by_one = torch.cat([anisotropic_diffusion(batch[i : i + 1]) for i in range(4)])
    assert torch.allclose(anisotropic_diffusion(batch), one_by_one, atol=1e-6)       # batched == per image
    assert anisotropic_diffusion(batch, iterations=0).equal(batch)


def test_diffusion_rejects_bad_parameters():
    x = torch.rand(1, 1, 8, 8)
    for kwargs in ({"gamma": 0.3}, {"kappa": 0.0}, {"option": 3}):
        with pytest.raises(ValueError):
            anisotropic_diffusion(x, **kwargs)
    with pytest.raises(ValueError):
        anisotropic_diffusion(x[0])


def test_diffusion_runs_on_the_input_device():
    """On the GPU when one is there (else the same check on the CPU): same result as the CPU."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.rand(8, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    cpu = anisotropic_diffusion(x)
    out = anisotropic_diffusion(x.to(dev))
    assert out.device.type == dev and torch.allclose(out.cpu(), cpu, atol=1e-5)
    vol = np.random.default_rng(0).random((2, 16, 16, 5)).astype(np.float32)
    np.testing.assert_allclose(diffuse_slices(vol, DiffusionConfig(device="auto")),
                               diffuse_slices(vol, DiffusionConfig(device="cpu")), atol=1e-5)


def test_diffuse_slices_is_per_axial_slice():
    vol = np.random.default_rng(0).random((2, 12, 10, 3)).astype(np.float32)
    cfg = DiffusionConfig(device="cpu")
    out = diffuse_slices(vol, cfg)
    for z in range(3):
        want = anisotropic_diffusion(torch.from_numpy(np.ascontiguousarray(vol[..., z]))[None])[0].numpy()
        np.testing.assert_allclose(out[..., z], want, atol=1e-6)


def test_zscore_volume_brain_statistics():
    rng = np.random.default_rng(0)
    vol = np.zeros((2, 20, 20, 6), np.float32)
    brain = np.zeros((20, 20, 6), bool)
    brain[4:16, 3:17, 1:5] = True
    vol[0][brain] = rng.normal(100, 20, brain.sum())
    vol[1][brain] = rng.normal(50, 5, brain.sum())
    vol[0][5, 5, 2] = 1e6                                          # an outlier is clipped away
    out = zscore_volume(vol, None)
    assert np.array_equal(brain_mask(vol), brain)
    for c in range(2):
        assert abs(out[c][brain].mean()) < 1e-5 and abs(out[c][brain].std() - 1) < 1e-4
        assert (out[c][~brain] == 0).all()
    assert out.max() < 5
    mm = zscore_volume(vol, brain, norm="minmax")
    assert mm.min() == -1.0 and mm.max() == 1.0 and (mm[:, ~brain] == -1).all()
    lo, hi = clip_percentiles(np.arange(1001.0))
    assert (lo, hi) == (5.0, 995.0)
    # diffusion happens after the clip and before the z-score: the result is still z-scored
    diffused = zscore_volume(vol, brain, diffusion=DiffusionConfig(device="cpu"))
    assert abs(diffused[0][brain].std() - 1) < 1e-4 and not np.allclose(diffused, out)


def test_picture_intensities():
    img = np.array([[0, 255], [128, 64]], np.uint8)
    assert scale_to_unit(img).max() == 1.0 and scale_to_unit(img.astype(np.uint16) * 0 + 65535).max() == 1.0
    x = torch.rand(3, 10, 12) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1)
    z = zscore_image(x)
    assert torch.allclose(z.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(1, 2), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(zscore_image(torch.ones(1, 4, 4)), torch.zeros(1, 4, 4))     # constant image: zeros


def test_resize_keeps_masks_exactly_binary():
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 300, 300, generator=gen) > 0.7).float()
    for size in (16, 64, 128, 256, 512):
        out = resize_mask(mask, size)
        assert out.shape == (1, size, size)
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    big = torch.zeros(1, 256, 256)
    big[:, 64:192, 32:96] = 1
    small = resize_mask(big, 64)
    assert small.sum() == 32 * 16                                  # exact for block-aligned shapes
    img = torch.rand(3, 256, 256, generator=gen)
    assert resize_image(img, 64).shape == (3, 64, 64) and torch.equal(resize_image(img, 256), img)
    assert resize_image(img[None], 32).shape == (1, 3, 32, 32)


def test_pad_and_fit():
    x = torch.ones(2, 240, 200)
    p = pad_to_square(x)
    assert p.shape == (2, 240, 240) and p[:, :, :20].sum() == 0 and p[:, :, 20:220].min() == 1
    img, msk = torch.rand(4, 240, 240), (torch.rand(1, 240, 240) > 0.5).float()
    pi, pm = fit_to_size(img, msk, 256, "pad")
    assert pi.shape == (4, 256, 256) and torch.equal(pi[:, 8:248, 8:248], img) and torch.equal(pm[:, 8:248, 8:248], msk)
    ri, rm = fit_to_size(img, msk, 64, "resize")
    assert ri.shape == (4, 64, 64) and set(rm.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        fit_to_size(img, msk, 128, "pad")


def test_augmentation_keeps_pairs_aligned_and_binary():
    torch.manual_seed(0)
    img = torch.zeros(2, 32, 32)
    img[:, 8:20, 4:14] = 1.0
    mask = (img[:1] > 0.5).float()
    flipped, fm = augment_pair(img, mask, AugmentConfig(hflip=1.0, rotate_p=0.0))
    assert torch.equal(flipped, img.flip(-1)) and torch.equal(fm, mask.flip(-1))
    for _ in range(10):
        ai, am = augment_pair(img, mask, AugmentConfig(hflip=0.5, vflip=0.5, rotate_p=1.0, max_degrees=10))
        assert ai.shape == img.shape and set(am.unique().tolist()) <= {0.0, 1.0}
        inside = ai[0][am[0] > 0.5]
        assert inside.mean() > 0.8                                 # the mask still sits on the object
    ri, rm = rotate_pair(img, mask, 0.0)
    assert torch.allclose(ri, img, atol=1e-6) and torch.equal(rm, mask)

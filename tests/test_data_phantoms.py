"""Seeded phantoms: the embedded default that needs no data."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ctslib.data import DiffusionConfig, describe, open_dataset, split_cases


def test_phantom_specs_and_sizes():
    mri = open_dataset("phantom", split="train", image_size=32)
    us = open_dataset("phantom-us", split="val", image_size=48)
    assert (len(mri), mri.in_channels) == (512, 4) and (len(us), us.in_channels) == (64, 1)
    assert len(open_dataset("phantom", split="test")) == 64
    assert len(open_dataset("phantom:100", split="val")) == 100
    assert len(open_dataset("phantom-us:100", limit=10)) == 10
    x, m, meta = mri[3]
    assert x.shape == (4, 32, 32) and x.dtype == torch.float32 and m.shape == (1, 32, 32)
    assert set(meta) == {"case", "slice", "path"} and meta["slice"] == 3
    assert us[0][0].shape == (1, 48, 48)


def test_phantoms_are_seeded_and_binary():
    a = open_dataset("phantom:16", image_size=32, seed=1)
    b = open_dataset("phantom:16", image_size=32, seed=1)
    c = open_dataset("phantom:16", image_size=32, seed=2)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(16))
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], open_dataset("phantom:16", split="val", image_size=32, seed=1)[0][0])
    for ds in (a, open_dataset("phantom-us:16", image_size=40)):
        for i in range(len(ds)):
            assert set(ds[i][1].unique().tolist()) <= {0.0, 1.0}


def test_phantom_normalisation_and_contrast():
    ds = open_dataset("phantom:64", image_size=64)
    i = next(i for i in range(64) if ds[i][1].sum() > 50)
    x, m, _ = ds[i]
    brain = (x != 0).any(0)
    assert abs(float(x[0][brain].mean())) < 1e-4 and abs(float(x[0][brain].std(unbiased=False)) - 1) < 1e-3
    inside, outside = x[:, m[0] > 0].mean(1), x[:, (m[0] == 0) & brain].mean(1)
    assert inside[0] < outside[0] and inside[3] > outside[3]          # dark in t1, bright in flair
    us = open_dataset("phantom-us:16", image_size=64)
    x, m, _ = next(us[i] for i in range(16) if us[i][1].sum() > 50)
    assert x[0][m[0] > 0].mean() < x[0][m[0] == 0].mean()             # hypoechoic nodule
    d = open_dataset("phantom-us:4", image_size=64, diffusion=DiffusionConfig())
    assert not torch.equal(d[0][0], open_dataset("phantom-us:4", image_size=64)[0][0])


def test_phantom_loader_stats_and_augment():
    ds = open_dataset("phantom:32", image_size=32, augment=True)
    torch.manual_seed(0)
    images, masks, meta = next(iter(DataLoader(ds, batch_size=16)))
    assert images.shape == (16, 4, 32, 32) and set(masks.unique().tolist()) <= {0.0, 1.0}
    stats = describe(open_dataset("phantom:32", image_size=32))
    assert stats["n_items"] == 32 and stats["n_cases"] == 4 and 0.5 < stats["frac_with_tumour"] <= 1.0
    assert len(split_cases(ds)) == 4

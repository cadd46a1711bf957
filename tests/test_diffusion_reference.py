"""The Perona-Malik filter (ctslib.data.preprocess.anisotropic_diffusion) against MedPy's, the outside reference.

MedPy's ``medpy.filter.smoothing.anisotropic_diffusion`` works in float32, so the two agree to float32
rounding; the options and parameters below move the result by far more than that tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from medpy.filter.smoothing import anisotropic_diffusion as medpy_diffusion   # the dev extra installs MedPy

from ctslib.data.preprocess import DiffusionConfig, anisotropic_diffusion

TOLERANCE = 1e-6


def _image() -> np.ndarray:
    """Noise on a bright disc: edges for the filter to keep, flat parts for it to smooth."""
    yy, xx = np.mgrid[:48, :56]
    disc = ((yy - 24) ** 2 + (xx - 30) ** 2 < 15 ** 2).astype(np.float64)
    return 0.6 * disc + 0.1 * np.random.default_rng(0).standard_normal(disc.shape)


def _ours(img: np.ndarray, kappa: float, gamma: float, iterations: int, option: int) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float32))[None, None]
    return anisotropic_diffusion(x, kappa, gamma, iterations, option)[0, 0].double().numpy()


@pytest.mark.parametrize("option", [1, 2])
@pytest.mark.parametrize("kappa, gamma, iterations", [(0.2, 0.1, 5), (0.5, 0.25, 12), (0.05, 0.15, 3)])
def test_matches_medpy(option, kappa, gamma, iterations):
    img = _image()
    ref = medpy_diffusion(img, niter=iterations, kappa=kappa, gamma=gamma, option=option)
    got = _ours(img, kappa, gamma, iterations, option)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOLERANCE)
    other = medpy_diffusion(img, niter=iterations, kappa=kappa, gamma=gamma, option=3 - option)
    assert np.abs(got - other).max() > 100 * TOLERANCE          # the comparison can tell the options apart


def test_default_config_matches_medpy():
    d = DiffusionConfig()
    img = _image()
    ref = medpy_diffusion(img, niter=d.iterations, kappa=d.kappa, gamma=d.gamma, option=d.option)
    np.testing.assert_allclose(_ours(img, d.kappa, d.gamma, d.iterations, d.option), ref, rtol=0, atol=TOLERANCE)
    assert np.abs(ref - img).max() > 100 * TOLERANCE                # the filter did something

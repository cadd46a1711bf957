"""CT (mu, N) table, iCT curriculum/probabilities/weights, ECT r(t): docs/method.md sections 1.4 and 7."""

import pytest
import torch

from ctslib import precond, schedules

K = 600_000
TABLE = [(0, 0.90250, 2), (1, 0.95000, 3), (100, 0.96638, 4), (1_000, 0.98726, 9), (10_000, 0.99606, 27),
         (100_000, 0.99875, 83), (300_000, 0.99928, 143), (519_000, 0.99945, 187), (600_000, 0.99949, 201)]


@pytest.mark.parametrize("k,mu,n", TABLE)
def test_ct_table(k, mu, n):
    assert schedules.ct_num_scales(k, K) == n
    assert abs(schedules.ct_target_decay(k, K) - mu) < 1e-5


def test_ct_unclamped_and_clamped():
    assert schedules.ct_num_scales(700_000, K, clamp=False) == 218
    assert abs(schedules.ct_target_decay(700_000, K, clamp=False) - 0.99953) < 1e-5
    assert schedules.ct_num_scales(700_000, K) == 201


def test_ict_probabilities_n11():
    ref = [0.0626, 0.1817, 0.2455, 0.2135, 0.1424, 0.0806, 0.0411, 0.0196, 0.0089, 0.0040]
    p = schedules.ict_index_probs(precond.karras_grid(11))
    assert len(p) == 10 and abs(float(p.sum()) - 1) < 1e-12
    for a, b in zip(p, ref):
        assert abs(float(a) - b) < 1e-4


def test_ict_weights_n11():
    g = precond.karras_grid(11)
    w = schedules.ict_weight(g[:-1], g[1:])
    assert abs(float(w[0]) - 67.9313) < 1e-4 * 67.9313
    assert abs(float(w[-1]) - 0.028830) < 1e-4 * 0.028830


@pytest.mark.parametrize("k,n", [(0, 11), (49_999, 11), (50_000, 21), (100_000, 41), (350_000, 1281), (399_999, 1281)])
def test_ict_curriculum(k, n):
    assert schedules.ict_num_scales(k, 400_000) == n


def test_pseudo_huber_c():
    assert abs(schedules.pseudo_huber_c(65_536) - 0.13824) < 1e-9
    assert abs(schedules.pseudo_huber_c(64 * 64) - 0.03456) < 1e-9


@pytest.mark.parametrize("stage,ref", [(0, [0, 0, 0, 4.99818, 40.0]), (1, [0, 0, 0.21212, 7.49909, 60.0])])
def test_ect_r(stage, ref):
    r = schedules.ect_r(torch.tensor([0.01, 0.1, 1.0, 10.0, 80.0]), stage)
    for a, b in zip(r, ref):
        assert abs(float(a) - b) <= 1e-4 * max(b, 1e-3), (float(a), b)

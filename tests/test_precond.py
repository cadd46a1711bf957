"""Reference values of docs/method.md section 7 for the grid, scalings and time input."""

import pytest
import torch

from ctslib import precond, schedules
from ctslib.losses import euler_step

REL = 1e-4


def close(a, b, rel=REL):
    return abs(float(a) - b) <= rel * max(abs(b), 1e-12)


def test_grid_n2_n3():
    assert torch.equal(precond.karras_grid(2), torch.tensor([0.002, 80.0], dtype=torch.float64))
    g3 = precond.karras_grid(3).flip(0)
    assert close(g3[0], 80) and close(g3[1], 2.51522) and close(g3[2], 0.002)


def test_grid_n11_ascending():
    ref = [0.002, 0.01672, 0.08509, 0.31828, 0.96542, 2.51522, 5.83895, 12.38158, 24.40834, 45.31373, 80]
    g = precond.karras_grid(11)
    for a, b in zip(g, ref):
        assert close(a, b, 2e-4), (float(a), b)


@pytest.mark.parametrize("n,ref", [(9, 0.026055), (27, 0.0048922), (83, 0.0026894), (201, 0.0022617)])
def test_smallest_online_level(n, ref):
    # descending sigma_{N-2} == ascending t_2
    assert close(precond.karras_grid(n)[1], ref)


@pytest.mark.parametrize("t,skip,out,cin", [(80, 3.90629e-5, 0.499978, 0.0124998), (1, 0.200641, 0.446319, 0.894427)])
def test_clean_scalings(t, skip, out, cin):
    s, o, i = precond.scalings(torch.tensor(t, dtype=torch.float64))
    assert close(s, skip) and close(o, out) and close(i, cin)


def test_scalings_at_sigma_min_exact():
    s, o, i = precond.scalings(torch.tensor(0.002, dtype=torch.float64))
    assert float(s) == 1.0 and float(o) == 0.0 and close(i, 1.99998)


def test_released_eps_scalings():
    s, o, _ = precond.ReleasedPrecond().scalings(torch.tensor(0.002, dtype=torch.float64))
    assert close(s, 0.99996) and close(o, 1.0e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_condition_bitwise(dtype):
    x = torch.randn(4, 1, 8, 8, dtype=dtype)
    F = torch.randn(4, 1, 8, 8, dtype=dtype) * 100
    t = torch.full((4,), 0.002, dtype=dtype)
    s, o, _ = precond.scalings(t)
    assert torch.equal(precond.apply_consistency(x, F, s, o), x)


def test_released_eps_breaks_boundary_condition():
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    F = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    s, o, _ = precond.ReleasedPrecond().scalings(torch.full((4,), 0.002, dtype=torch.float64))
    assert not torch.equal(precond.apply_consistency(x, F, s, o), x)


def test_c_noise_values():
    t = torch.tensor([80.0, 1.0, 0.002], dtype=torch.float64)
    cm, edm = precond.c_noise(t, "cm"), precond.c_noise(t, "edm")
    for a, b in zip(cm, [1095.5067, 0.0, -1553.6520]):
        assert abs(float(a) - b) <= 1e-4 * max(abs(b), 1)
    for a, b in zip(edm, [1.09551, 0.0, -1.55365]):
        assert abs(float(a) - b) <= 1e-4 * max(abs(b), 1)


def test_karras_weight_values():
    w = schedules.karras_weight(torch.tensor([80.0, 1.0, 0.002]))
    assert close(w[0], 4.000156) and close(w[1], 5.0) and close(w[2], 250_004)
    assert close(schedules.karras_weight(precond.karras_grid(201)[1]), 1.955e5, 1e-3)


def test_euler_closed_form():
    g = torch.Generator().manual_seed(1)
    xm = torch.randint(0, 2, (6, 1, 8, 8), generator=g).double() * 2 - 1
    z = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    grid = precond.karras_grid(18)
    idx = torch.randint(0, 17, (6,), generator=g)
    t_lo, t_hi = grid[idx], grid[idx + 1]
    x_hi = xm + t_hi.reshape(-1, 1, 1, 1) * z
    closed = xm + t_lo.reshape(-1, 1, 1, 1) * z
    assert (euler_step(x_hi, t_hi, t_lo, xm) - closed).abs().max() < 1e-6

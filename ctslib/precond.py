"""Consistency-model preconditioning (docs/method.md section 1.2).

f_theta(x, t; x^d) = c_skip(t) * x + c_out(t) * F_theta(c_in(t) * x, x^d, c_noise(t)).
The boundary-condition scalings make f(x, sigma_min) == x exactly (Song et al. 2023, eq. 4-5).
All scalings are evaluated in float32 or float64, never in half precision.
"""
from __future__ import annotations

import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
SIGMA_DATA = 0.5
RELEASED_EPS = 1e-5  # the constant the authors' code adds to the scalings (docs/method.md section 1.2)


def _hi(t: torch.Tensor | float) -> torch.Tensor:
    """Cast t to float64 (float tensors) or keep float32/64, never half precision."""
    t = torch.as_tensor(t)
    return t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float32)


def karras_grid(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> torch.Tensor:
    """Ascending Karras grid t_1..t_N (docs/method.md section 1.1): t_n = (a + (n-1)/(N-1) (b - a))^rho, a = s_min^(1/rho)."""
    if n < 2:
        raise ValueError(f"a Karras grid needs at least 2 points, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    grid = (lo + ramp * (hi - lo)) ** rho
    grid[0], grid[-1] = sigma_min, sigma_max  # exact end points, no pow round-off
    return grid


def c_skip(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN, released_eps: bool = False) -> torch.Tensor:
    """c_skip(t) = sd^2 / ((t - sigma_min)^2 + sd^2)  (CM eq. 5); =1 at t = sigma_min."""
    t = _hi(t)
    eps = RELEASED_EPS if released_eps else 0.0
    return sigma_data**2 / ((t - sigma_min) ** 2 + sigma_data**2 + eps)


def c_out(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN, released_eps: bool = False) -> torch.Tensor:
    """c_out(t) = sd (t - sigma_min) / sqrt(t^2 + sd^2)  (CM eq. 5); =0 at t = sigma_min."""
    t = _hi(t)
    out = sigma_data * (t - sigma_min) / torch.sqrt(t**2 + sigma_data**2)
    return out + RELEASED_EPS if released_eps else out


def c_in(t, sigma_data: float = SIGMA_DATA, released_eps: bool = False) -> torch.Tensor:
    """c_in(t) = 1 / sqrt(t^2 + sd^2)  (EDM Table 1)."""
    t = _hi(t)
    out = 1.0 / torch.sqrt(t**2 + sigma_data**2)
    return out + RELEASED_EPS if released_eps else out


def c_noise(t, kind: str = "cm") -> torch.Tensor:
    """Time input of the network: 250 ln(t) ("cm", as released) or ln(t)/4 ("edm", EDM/ECT)."""
    t = _hi(t)
    if kind == "cm":
        return 250.0 * torch.log(t)
    if kind == "edm":
        return 0.25 * torch.log(t)
    raise ValueError(f"unknown c_noise kind {kind!r}; use 'cm' or 'edm'")


def scalings(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN, released_eps: bool = False):
    """Return (c_skip, c_out, c_in) at t with the boundary condition (docs/method.md section 1.2)."""
    return (
        c_skip(t, sigma_data, sigma_min, released_eps),
        c_out(t, sigma_data, sigma_min, released_eps),
        c_in(t, sigma_data, released_eps),
    )


def edm_scalings(t, sigma_data: float = SIGMA_DATA):
    """EDM scalings without the sigma_min shift (used by ECT training, docs/method.md section 6.2)."""
    t = _hi(t)
    return sigma_data**2 / (t**2 + sigma_data**2), sigma_data * t / torch.sqrt(t**2 + sigma_data**2), c_in(t, sigma_data)


def apply_consistency(x: torch.Tensor, F: torch.Tensor, skip: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """f = c_skip * x + c_out * F, with the scalings broadcast as (B,1,1,1) and the sum in x's float dtype."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return skip.to(dtype).reshape(shape) * x.to(dtype) + out.to(dtype).reshape(shape) * F.to(dtype)

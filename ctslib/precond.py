"""Preconditioning: the scalings that turn the network F_theta into the consistency function (docs/method.md section 1.2).

f_theta(x, t; x^d) = c_skip(t) * x + c_out(t) * F_theta(c_in(t) * x, x^d, c_noise(t)).
The module-level functions are the formulas; one small class per parameterisation uses them and is
chosen once, from the config (`for_model`), then passed to the network:

- `ConsistencyPrecond`: CM's boundary-condition scalings, f(x, sigma_min) == x exactly (Song et al. 2023, eq. 4-5);
- `ReleasedPrecond`: the authors' released code, which adds eps = 1e-5 to the scalings (breaks that boundary);
- `EDMPrecond`: EDM's scalings without the sigma_min shift (the diffusion baseline; ECT's training).

All scalings are evaluated in float32 or float64, never in half precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
SIGMA_DATA = 0.5
RELEASED_EPS = 1e-5  # the constant the authors' code adds to the scalings (docs/method.md section 1.2)


def _full_precision(t: torch.Tensor | float) -> torch.Tensor:
    """t as a tensor in float32 or float64 (kept as given), never in half precision (cast to float32)."""
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


def c_skip(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> torch.Tensor:
    """c_skip(t) = sd^2 / ((t - sigma_min)^2 + sd^2)  (CM eq. 5); =1 at t = sigma_min."""
    t = _full_precision(t)
    return sigma_data**2 / ((t - sigma_min) ** 2 + sigma_data**2)


def c_out(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> torch.Tensor:
    """c_out(t) = sd (t - sigma_min) / sqrt(t^2 + sd^2)  (CM eq. 5); =0 at t = sigma_min."""
    t = _full_precision(t)
    return sigma_data * (t - sigma_min) / torch.sqrt(t**2 + sigma_data**2)


def c_in(t, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """c_in(t) = 1 / sqrt(t^2 + sd^2)  (EDM Table 1)."""
    t = _full_precision(t)
    return 1.0 / torch.sqrt(t**2 + sigma_data**2)


def c_noise(t, kind: str = "cm") -> torch.Tensor:
    """Time input of the network: 250 ln(t) ("cm", as released) or ln(t)/4 ("edm", EDM/ECT)."""
    t = _full_precision(t)
    if kind == "cm":
        return 250.0 * torch.log(t)
    if kind == "edm":
        return 0.25 * torch.log(t)
    raise ValueError(f"unknown c_noise kind {kind!r}; use 'cm' or 'edm'")


def scalings(t, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN):
    """Return (c_skip, c_out, c_in) at t with the boundary condition (docs/method.md section 1.2)."""
    return c_skip(t, sigma_data, sigma_min), c_out(t, sigma_data, sigma_min), c_in(t, sigma_data)


def edm_scalings(t, sigma_data: float = SIGMA_DATA):
    """EDM scalings without the sigma_min shift (EDM Table 1; used by ECT training, docs/method.md section 6.2)."""
    t = _full_precision(t)
    return sigma_data**2 / (t**2 + sigma_data**2), sigma_data * t / torch.sqrt(t**2 + sigma_data**2), c_in(t, sigma_data)


def apply_consistency(x: torch.Tensor, F: torch.Tensor, skip: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """f = c_skip * x + c_out * F, with the scalings broadcast as (B,1,1,1) and the sum in x's float dtype."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return skip.to(dtype).reshape(shape) * x.to(dtype) + out.to(dtype).reshape(shape) * F.to(dtype)


# ---- one class per parameterisation: scalings(t) -> (c_skip, c_out, c_in) and c_noise(t) ----------------------
@dataclass(frozen=True)
class ConsistencyPrecond:
    """CM's parameterisation with the sigma_min boundary shift: f(x, sigma_min) = x exactly (CM eq. 5)."""
    sigma_data: float = SIGMA_DATA
    sigma_min: float = SIGMA_MIN
    noise: str = "cm"              # the c_noise kind: "cm" or "edm"

    def scalings(self, t):
        return scalings(t, self.sigma_data, self.sigma_min)

    def c_noise(self, t) -> torch.Tensor:
        return c_noise(t, self.noise)


@dataclass(frozen=True)
class ReleasedPrecond(ConsistencyPrecond):
    """The released code's scalings: eps added to c_skip's denominator, to c_out and to c_in, so f(x, sigma_min) != x."""
    eps: float = RELEASED_EPS

    def scalings(self, t):
        t, sd = _full_precision(t), self.sigma_data
        return (sd**2 / ((t - self.sigma_min) ** 2 + sd**2 + self.eps),
                c_out(t, sd, self.sigma_min) + self.eps, c_in(t, sd) + self.eps)


@dataclass(frozen=True)
class EDMPrecond:
    """EDM's parameterisation (Karras et al. 2022, Table 1): no sigma_min shift, so f(x, t) -> x only as t -> 0."""
    sigma_data: float = SIGMA_DATA
    noise: str = "edm"

    def scalings(self, t):
        return edm_scalings(t, self.sigma_data)

    def c_noise(self, t) -> torch.Tensor:
        return c_noise(t, self.noise)


Preconditioning = ConsistencyPrecond | EDMPrecond


def for_model(cfg) -> Preconditioning:
    """The parameterisation a ModelConfig names: the released code's eps variant if `released_eps`, else CM's."""
    kind = ReleasedPrecond if cfg.released_eps else ConsistencyPrecond
    return kind(cfg.sigma_data, cfg.sigma_min, cfg.c_noise)

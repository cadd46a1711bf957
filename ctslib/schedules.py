"""Training schedules: CT's N(k), mu(k); iCT's curriculum, lognormal index sampling and weights; ECT's t -> r.

Every function cites the equation it implements (docs/method.md sections 1.3, 1.4, 6.1, 6.2).
"""
from __future__ import annotations

import math

import torch

from .precond import SIGMA_DATA, SIGMA_MAX, SIGMA_MIN


# ---- CT (Song et al. 2023, Appendix C; CM code) ------------------------------------------------
def ct_n(k: int, total_steps: int, s0: int = 2, s1: int = 200, clamp: bool = True) -> int:
    """n(k) = max(1, ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1))  (docs/method.md section 1.4)."""
    if clamp:
        k = min(k, total_steps)
    return max(1, math.ceil(math.sqrt(k / total_steps * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1))


def ct_num_scales(k: int, total_steps: int, s0: int = 2, s1: int = 200, clamp: bool = True) -> int:
    """N(k) = n(k) + 1 grid points (docs/method.md section 1.4)."""
    return ct_n(k, total_steps, s0, s1, clamp) + 1


def ct_target_decay(k: int, total_steps: int, s0: int = 2, s1: int = 200, mu0: float = 0.95, clamp: bool = True) -> float:
    """mu(k) = mu0^(s0 / n(k)): the adaptive target EMA rate, divided by n(k) as in the CM code (docs/method.md section 1.4)."""
    return math.exp(s0 * math.log(mu0) / ct_n(k, total_steps, s0, s1, clamp))


def karras_weight(t, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """lambda(t) = 1/t^2 + 1/sd^2, the 'karras' weighting evaluated at the online level (docs/method.md section 1.3 step 9)."""
    t = torch.as_tensor(t, dtype=torch.float64) if not torch.is_tensor(t) else t.double()
    return 1.0 / t**2 + 1.0 / sigma_data**2


# ---- iCT (Song & Dhariwal 2024) -------------------------------------------------------------
def ict_num_scales(k: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) = min(s0 2^floor(k/K'), s1) + 1, K' = floor(K / (log2 floor(s1/s0) + 1))  (iCT eq. 11)."""
    k_prime = math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1))
    return min(s0 * 2 ** math.floor(k / k_prime), s1) + 1


def ict_index_probs(sigmas: torch.Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> torch.Tensor:
    """p(i) ∝ erf((ln s_{i+1} - P_mean)/(√2 P_std)) - erf((ln s_i - P_mean)/(√2 P_std)), i = 1..N-1 (iCT sec. 3.5).

    `sigmas` is the ascending grid; returns N-1 probabilities for the pairs (s_i, s_{i+1}).
    """
    z = (torch.log(sigmas.double()) - p_mean) / (math.sqrt(2.0) * p_std)
    mass = torch.erf(z[1:]) - torch.erf(z[:-1])
    return mass / mass.sum()


def ict_weight(sigma_lo: torch.Tensor, sigma_hi: torch.Tensor) -> torch.Tensor:
    """lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i)  (iCT sec. 3.4)."""
    return 1.0 / (sigma_hi.double() - sigma_lo.double())


def pseudo_huber_c(numel: int) -> float:
    """c = 0.00054 sqrt(D), D = C*H*W of one sample (iCT sec. 3.3)."""
    return 0.00054 * math.sqrt(numel)


# ---- ECT (Geng et al. 2025, ECMLoss) -------------------------------------------------------
def ect_r(t: torch.Tensor, stage: int, q: float = 2.0, k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """r = max(0, t (1 - q^-(s+1) (1 + k sigmoid(-b t))))  (ECT eq. 9, docs/method.md section 6.2)."""
    t = t.double() if torch.is_tensor(t) else torch.as_tensor(t, dtype=torch.float64)
    ratio = 1.0 - q ** (-(stage + 1)) * (1.0 + k * torch.sigmoid(-b * t))
    return (t * ratio).clamp(min=0.0)


def ect_sample_t(n: int, generator: torch.Generator | None = None, p_mean: float = -1.1, p_std: float = 2.0,
                 sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, device=None) -> torch.Tensor:
    """t = exp(P_mean + P_std n), n ~ N(0,1), clamped to [sigma_min, sigma_max] (docs/method.md section 6.2)."""
    z = torch.randn(n, generator=generator, dtype=torch.float64)
    return (p_mean + p_std * z).exp().clamp(sigma_min, sigma_max).to(device)

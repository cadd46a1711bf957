"""How CT, iCT and ECT draw the pair of noise levels (t_{n+1}, t_n) and the weight lambda of each sample.

The three objectives differ only here and in the distance d (docs/method.md sections 1.4, 6.1, 6.2); the loss
in losses.py is one equation for all of them. `level_sampler` builds the objective's sampler once from the config;
`sampler(step, batch, generator)` returns float64 CPU tensors, drawn from `generator` in a fixed order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import schedules
from .config import CTConfig, ECTConfig, ICTConfig, ModelConfig, TrainConfig
from .precond import karras_grid


class LevelPairs(NamedTuple):
    t_hi: torch.Tensor              # t_{n+1}: the online network's (noisier) level, per sample
    t_lo: torch.Tensor              # t_n < t_{n+1}: the teacher's level (0 in ECT's denoiser phase: the target is x^m)
    weight: torch.Tensor            # lambda
    num_scales: int = 0             # N(k) of the Karras grid the pairs come from (0: continuous levels)


def loss_weight(name: str, t_hi: torch.Tensor, t_lo: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda: "karras" 1/t_{n+1}^2 + 1/sd^2 (CT), "ict" 1/(t_{n+1} - t_n) (iCT sec. 3.4, ECT), or "uniform" 1."""
    if name == "karras":
        return schedules.karras_weight(t_hi, sigma_data)
    if name == "ict":
        return schedules.ict_weight(t_lo, t_hi)
    return torch.ones_like(t_hi)


def top_draws(batch: int, share: float, generator: torch.Generator | None) -> torch.Tensor:
    """Which samples move to the top level sigma_max: a Bernoulli(share) draw each (nothing is drawn for share 0).

    One-step sampling evaluates f only at sigma_max, which a uniform or lognormal draw rarely trains.
    """
    if share <= 0:
        return torch.zeros(batch, dtype=torch.bool)
    return torch.rand(batch, generator=generator, dtype=torch.float64) < share


@dataclass(frozen=True)
class _GridLevels:
    """Pairs of neighbours (t_n, t_{n+1}) on a Karras grid; subclasses say how N(k) and the index n are drawn."""
    cfg: CTConfig | ICTConfig
    steps: int                      # K, the length of the curriculum
    model: ModelConfig              # sigma_min, sigma_max, rho, sigma_data
    top_share: float = 0.0          # AnchorConfig.sigma_max_share

    def grid(self, n: int) -> torch.Tensor:
        return karras_grid(n, self.model.sigma_min, self.model.sigma_max, self.model.rho)

    def pairs(self, grid: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None) -> LevelPairs:
        n = len(grid)
        idx = torch.where(top_draws(len(idx), self.top_share, generator), torch.full_like(idx, n - 2), idx)
        t_lo, t_hi = grid[idx], grid[idx + 1]
        return LevelPairs(t_hi, t_lo, loss_weight(self.cfg.weighting, t_hi, t_lo, self.model.sigma_data), n)


class CTLevels(_GridLevels):
    """CT: n ~ U{1, ..., N(k) - 1} on the Karras grid of N(k) levels (docs/method.md section 1.4)."""

    def __call__(self, step: int, batch: int, generator: torch.Generator | None = None) -> LevelPairs:
        n = schedules.ct_num_scales(step, self.steps, self.cfg.s0, self.cfg.s1, self.cfg.clamp_schedule)
        return self.pairs(self.grid(n), torch.randint(0, n - 1, (batch,), generator=generator), generator)


class ICTLevels(_GridLevels):
    """iCT: N(k) doubles in stages; n is drawn with lognormal probabilities over the pairs (iCT sec. 3.5, eq. 11)."""

    def __call__(self, step: int, batch: int, generator: torch.Generator | None = None) -> LevelPairs:
        grid = self.grid(schedules.ict_num_scales(step, self.steps, self.cfg.s0, self.cfg.s1))
        probs = schedules.ict_index_probs(grid, self.cfg.p_mean, self.cfg.p_std)
        return self.pairs(grid, torch.multinomial(probs, batch, replacement=True, generator=generator), generator)


@dataclass(frozen=True)
class ECTLevels:
    """ECT: lognormal t, the teacher at r(t) < t by stage (ECT eq. 9; r = 0 in the denoiser phase, section 6.2)."""
    cfg: ECTConfig
    steps: int
    model: ModelConfig
    top_share: float = 0.0

    def __call__(self, step: int, batch: int, generator: torch.Generator | None = None) -> LevelPairs:
        m, cfg = self.model, self.cfg
        t_hi = schedules.ect_sample_t(batch, generator, cfg.p_mean, cfg.p_std, m.sigma_min, m.sigma_max)
        t_hi = torch.where(top_draws(batch, self.top_share, generator), torch.full_like(t_hi, m.sigma_max), t_hi)
        stage = cfg.stage(step, self.steps)
        t_lo = torch.zeros_like(t_hi) if stage is None else schedules.ect_r(t_hi, stage, cfg.q, cfg.k, cfg.b)
        return LevelPairs(t_hi, t_lo, loss_weight(cfg.weighting, t_hi, t_lo, m.sigma_data), 0)


SAMPLERS = {"ct": CTLevels, "ict": ICTLevels, "ect": ECTLevels}


def level_sampler(model_cfg: ModelConfig, train_cfg: TrainConfig) -> CTLevels | ICTLevels | ECTLevels:
    """The level sampler of the objective trained, with its own config, the run length and the top-pair share."""
    return SAMPLERS[train_cfg.objective](train_cfg.objective_config, train_cfg.steps, model_cfg,
                                         train_cfg.anchor.sigma_max_share)

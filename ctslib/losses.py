"""Losses of CTS and its iCT / ECT variants, and the anchor term (docs/method.md section 1.3 step 9,
sections 6.1, 6.2 and 9).

L_CTS = mean_batch( lambda(t_{n+1}) d(f_theta(x_{n+1}, t_{n+1}), sg f_theta^-(x_n, t_n)) + alpha L_S
                    + beta L_A(f_theta(x_{n+1}, t_{n+1}), x^m) ),
with beta = 0 (no anchor) in the paper's recipe.
`ConsistencyLoss.__call__` performs steps 1-9 of one training iteration for a batch and returns the
loss to minimise plus a dict of logged scalars; the trainer owns the optimiser and target updates.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import schedules
from .config import ModelConfig, TrainConfig
from .device import host_scalars, to_device
from .precond import karras_grid
from .targets import RNGSnapshot


def encode_mask(mask: torch.Tensor, encoding: str = "pm1") -> torch.Tensor:
    """x^m = 2m - 1 in {-1,+1} ("pm1", the paper) or m itself ("01", released)."""
    return 2.0 * mask - 1.0 if encoding == "pm1" else mask


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a,b) = mean over pixels of (a-b)^2, per sample (docs/method.md section 1.3 step 9)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def pseudo_huber_distance(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """d(a,b) = sqrt(||a-b||_2^2 + c^2) - c over the whole per-sample tensor (iCT sec. 3.3)."""
    sq = (a.float() - b.float()).pow(2).flatten(1).sum(1)
    return torch.sqrt(sq + c * c) - c


def segmentation_loss(aux_prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_S = mean_px (y_hat - m)^2 with the {0,1} mask as target, per sample (docs/method.md section 1.3 step 9)."""
    return (aux_prob.float() - mask.float()).pow(2).flatten(1).mean(1)


def soft_dice_loss(prob: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 sum(p m) + s) / (sum p + sum m + s), per sample (Milletari et al. 2016, V-Net eq. 1, smoothed)."""
    p, m = prob.float().flatten(1), mask.float().flatten(1)
    return 1.0 - (2.0 * (p * m).sum(1) + smooth) / (p.sum(1) + m.sum(1) + smooth)


def bce_dice_loss(logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """BCE with logits (mean over pixels) + soft Dice loss, per sample: the usual supervised U-Net loss."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), mask.float(), reduction="none").flatten(1).mean(1)
    return bce + soft_dice_loss(torch.sigmoid(logits.float()), mask, smooth)


def aux_loss(aux_logits: torch.Tensor, mask: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """L_S on the auxiliary head, per sample: the paper's MSE on sigmoid(logits), or BCE + Dice ("bce_dice")."""
    if kind == "bce_dice":
        return bce_dice_loss(aux_logits, mask)
    return segmentation_loss(torch.sigmoid(aux_logits.float()), mask)


def mask_logits(denoised: torch.Tensor, scale: float, encoding: str = "pm1") -> torch.Tensor:
    """Logits of a consistency output in mask units: scale * f (pm1) or scale * (2f - 1) ({0,1} masks).

    Their sign is the sampler's fixed threshold (0, or 0.5 for {0,1}), so BCE/Dice on them score the mask we report.
    """
    y = denoised.float() if encoding == "pm1" else 2.0 * denoised.float() - 1.0
    return scale * y


def anchor_loss(denoised: torch.Tensor, mask: torch.Tensor, kind: str = "bce_dice", logit_scale: float = 4.0,
                encoding: str = "pm1") -> torch.Tensor:
    """L_A(f(x_t, t), x^m), per sample: the expert mask as a direct target of the consistency output.

    "l2": mean_px (f - x^m)^2, the denoising (DSM) term of Consistency Trajectory Models (Kim et al., ICLR 2024, eq. 9);
    "bce_dice": BCE + soft Dice on logits = scale * f, the x0-prediction losses of one-step segmenters (SDSeg, Lotus)
    in the form that suits ~1%-area foregrounds.
    """
    if kind == "l2":
        return l2_distance(denoised, encode_mask(mask, encoding))
    return bce_dice_loss(mask_logits(denoised, logit_scale, encoding), mask)


def euler_step(x_hi: torch.Tensor, t_hi: torch.Tensor, t_lo: torch.Tensor, x_clean: torch.Tensor) -> torch.Tensor:
    """One Euler step of dx/dt = (x - x^m)/t from t_{n+1} to t_n (the closed form is x^m + t_n z; step 7)."""
    shape = (-1,) + (1,) * (x_hi.ndim - 1)
    return x_hi + (t_lo - t_hi).reshape(shape) * (x_hi - x_clean) / t_hi.reshape(shape)


@dataclass
class Pairs:
    """Noise levels of one batch: the online (more noise) and teacher (less noise) levels, and weights."""
    t_hi: torch.Tensor
    t_lo: torch.Tensor
    weight: torch.Tensor
    num_scales: int


class ConsistencyLoss:
    """One CT / iCT / ECT loss evaluation. The teacher is `target` for CT and the online model for iCT/ECT."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig):
        self.m, self.t = model_cfg, train_cfg

    # -- noise levels ------------------------------------------------------------------------------
    def sample_pairs(self, step: int, batch: int, generator: torch.Generator | None = None) -> Pairs:
        """Draw (t_{n+1}, t_n) per sample following the objective's curriculum (docs/method.md sections 1.4, 6.1, 6.2)."""
        m, t = self.m, self.t
        if t.objective == "ect":
            t_hi = schedules.ect_sample_t(batch, generator, t.p_mean, t.p_std, m.sigma_min, m.sigma_max)
            t_hi = torch.where(self._top_draws(batch, generator), torch.full_like(t_hi, m.sigma_max), t_hi)
            stage = t.ect_stage(step)
            t_lo = torch.zeros_like(t_hi) if stage is None else schedules.ect_r(t_hi, stage, t.ect_q, t.ect_k, t.ect_b)
            return Pairs(t_hi, t_lo, self.weight(t_hi, t_lo), 0)
        if t.objective == "ict":
            n_scales = schedules.ict_num_scales(step, t.steps, t.ict_s0, t.ict_s1)
            grid = karras_grid(n_scales, m.sigma_min, m.sigma_max, m.rho)
            probs = schedules.ict_index_probs(grid, t.p_mean, t.p_std)
            idx = torch.multinomial(probs, batch, replacement=True, generator=generator)
        else:
            n_scales = schedules.ct_num_scales(step, t.steps, t.s0, t.s1, t.clamp_schedule)
            grid = karras_grid(n_scales, m.sigma_min, m.sigma_max, m.rho)
            idx = torch.randint(0, n_scales - 1, (batch,), generator=generator)
        idx = torch.where(self._top_draws(batch, generator), torch.full_like(idx, n_scales - 2), idx)
        t_lo, t_hi = grid[idx], grid[idx + 1]
        return Pairs(t_hi, t_lo, self.weight(t_hi, t_lo), n_scales)

    def _top_draws(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        """Which samples are moved to the top level sigma_max: a Bernoulli(sigma_max_share) draw each.

        One-step sampling evaluates f only at sigma_max, which a uniform or lognormal draw rarely trains.
        """
        share = self.t.sigma_max_share
        if share <= 0:
            return torch.zeros(batch, dtype=torch.bool)
        return torch.rand(batch, generator=generator, dtype=torch.float64) < share

    def weight(self, t_hi: torch.Tensor, t_lo: torch.Tensor) -> torch.Tensor:
        """lambda: karras 1/t^2 + 1/sd^2 at the online level, uniform 1, or iCT 1/(t_{n+1} - t_n)."""
        if self.t.loss_weighting == "karras":
            return schedules.karras_weight(t_hi, self.m.sigma_data)
        if self.t.loss_weighting == "ict":
            return schedules.ict_weight(t_lo, t_hi)
        return torch.ones_like(t_hi)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.t.objective == "ect":
            c = self.t.ect_c
            return pseudo_huber_distance(a, b, c) if c > 0 else (a.float() - b.float()).pow(2).flatten(1).sum(1).sqrt()
        if self.t.loss_metric == "pseudo_huber":
            return pseudo_huber_distance(a, b, schedules.pseudo_huber_c(a[0].numel()))
        return l2_distance(a, b)

    # -- one evaluation ----------------------------------------------------------------------------
    def __call__(self, model: nn.Module, teacher: nn.Module, image: torch.Tensor, mask: torch.Tensor, step: int,
                 generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1),
                 autocast=contextlib.nullcontext) -> tuple[torch.Tensor, dict[str, float]]:
        """Steps 1-9: returns (L_CTS, logs). `teacher` is the target model (CT) or the online model (iCT/ECT).

        With `shard=(rank, world)` the noise levels and z are drawn for the global batch (world x local)
        and this rank keeps its share, so a data-parallel run draws exactly what one process would.
        """
        device = image.device
        rank, world = shard
        x_clean = encode_mask(mask, self.t.mask_encoding)
        full = self.sample_pairs(step, image.shape[0] * world, generator)
        pairs = Pairs(full.t_hi[rank::world], full.t_lo[rank::world], full.weight[rank::world], full.num_scales)
        t_hi, t_lo, weight = (to_device(v, device) for v in (pairs.t_hi, pairs.t_lo, pairs.weight))
        z = torch.randn((x_clean.shape[0] * world,) + tuple(x_clean.shape[1:]), generator=generator)[rank::world]
        z = to_device(z.contiguous(), device)
        shape = (-1, 1, 1, 1)
        x_hi = x_clean + t_hi.float().reshape(shape) * z      # step 1
        x_lo = x_clean + t_lo.float().reshape(shape) * z      # step 7 (closed-form Euler step, same z)
        edm = self.t.objective == "ect" and self.t.ect_precond

        rng = RNGSnapshot(device)
        with autocast():
            online = model(x_hi, t_hi, image, edm_precond=edm)    # steps 2-6
        with torch.no_grad(), rng.replay(), autocast():       # step 8: same dropout masks
            if self.t.objective == "ect":
                safe = t_lo.clamp(min=self.m.sigma_min)
                target = teacher(x_lo, safe, image, edm_precond=edm).denoised
                target = torch.where((t_lo > 0).reshape(shape), target, x_clean)
            else:
                target = teacher(x_lo, t_lo, image).denoised
        target = target.detach()

        l_ct = weight.float() * self.distance(online.denoised, target)
        if online.aux_logits is not None and self.t.alpha > 0:
            l_s = aux_loss(online.aux_logits, mask, self.t.seg_loss)
        else:
            l_s = torch.zeros_like(l_ct)
        l_a = anchor_loss(online.denoised, mask, self.t.anchor_loss, self.t.anchor_logit_scale, self.t.mask_encoding) \
            if self.t.anchor > 0 else torch.zeros_like(l_ct)
        loss = (l_ct + self.t.alpha * l_s + self.t.anchor * l_a).mean()
        logs = {**host_scalars({"loss": loss, "loss_ct": l_ct.float().mean(), "loss_s": l_s.float().mean(),
                                "loss_anchor": l_a.float().mean()}),
                "num_scales": pairs.num_scales, "t_hi_mean": float(pairs.t_hi.float().mean())}
        if not math.isfinite(logs["loss"]):
            logs["nonfinite"] = 1.0
        return loss, logs

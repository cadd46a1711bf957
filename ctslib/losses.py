"""The CTS loss (docs/method.md section 1.3 step 9, sections 6.1, 6.2 and 9) and the terms it is made of.

L_CTS = mean_batch( lambda(t_{n+1}) d(f_theta(x_{n+1}, t_{n+1}), sg f^-(x_n, t_n)) + alpha L_S + beta L_A ),
with x_{n+1} = x^m + t_{n+1} z and x_n = x^m + t_n z (one z), and beta = 0 (no anchor) in the paper's recipe.
`ConsistencyLoss.__call__` is that equation for one batch; how the levels are drawn (CT, iCT, ECT) lives in
levels.py, and the training loop (train.fit) owns autocast, data-parallel sharding of the draws, the log,
the optimiser and the target updates.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import schedules
from .config import ModelConfig, TrainConfig
from .device import to_device
from .levels import level_sampler
from .masks import PM1, MaskCoding, mask_coding
from .precond import EDMPrecond
from .targets import RNGSnapshot


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a,b) = mean over pixels of (a-b)^2, per sample (docs/method.md section 1.3 step 9)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def l2_norm_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a,b) = ||a-b||_2 over the whole per-sample tensor (ECT with c = 0)."""
    return (a.float() - b.float()).pow(2).flatten(1).sum(1).sqrt()


def pseudo_huber_distance(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """d(a,b) = sqrt(||a-b||_2^2 + c^2) - c over the whole per-sample tensor (iCT sec. 3.3)."""
    sq = (a.float() - b.float()).pow(2).flatten(1).sum(1)
    return torch.sqrt(sq + c * c) - c


def ict_pseudo_huber_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The pseudo-Huber d with iCT's c = 0.00054 sqrt(D), D = C*H*W of one sample (iCT sec. 3.3)."""
    return pseudo_huber_distance(a, b, schedules.pseudo_huber_c(a[0].numel()))


DISTANCES = {"l2": l2_distance, "pseudo_huber": ict_pseudo_huber_distance}


def objective_distance(train_cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """d of the objective trained: CT's and iCT's by name (`metric`), ECT's by its c (0: the L2 norm)."""
    if train_cfg.objective == "ect":
        c = train_cfg.ect.c
        return partial(pseudo_huber_distance, c=c) if c > 0 else l2_norm_distance
    return DISTANCES[train_cfg.objective_config.metric]


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


def anchor_loss(denoised: torch.Tensor, mask: torch.Tensor, kind: str = "bce_dice", logit_scale: float = 4.0,
                masks: MaskCoding | str = PM1) -> torch.Tensor:
    """L_A(f(x_t, t), x^m), per sample: the expert mask as a direct target of the consistency output.

    "l2": mean_px (f - x^m)^2, the denoising (DSM) term of Consistency Trajectory Models (Kim et al., ICLR 2024, eq. 9);
    "bce_dice": BCE + soft Dice on logits whose sign is the sampler's threshold (masks.py), the x0-prediction losses
    of one-step segmenters (SDSeg, Lotus), in the form that suits small foregrounds (Dice does not drown in background).
    """
    masks = mask_coding(masks)
    if kind == "l2":
        return l2_distance(denoised, masks.encode(mask))
    return bce_dice_loss(masks.logits(denoised, logit_scale), mask)


def euler_step(x_hi: torch.Tensor, t_hi: torch.Tensor, t_lo: torch.Tensor, x_clean: torch.Tensor) -> torch.Tensor:
    """One Euler step of dx/dt = (x - x^m)/t from t_{n+1} to t_n (the closed form is x^m + t_n z; step 7)."""
    shape = (-1,) + (1,) * (x_hi.ndim - 1)
    return x_hi + (t_lo - t_hi).reshape(shape) * (x_hi - x_clean) / t_hi.reshape(shape)


class Draws(NamedTuple):
    """The random draws of one training step, one row per sample: levels and weights (float64), and z."""
    t_hi: torch.Tensor
    t_lo: torch.Tensor
    weight: torch.Tensor
    z: torch.Tensor
    num_scales: int = 0

    def rows(self, rank: int, world: int) -> Draws:
        """Rows rank, rank + world, ...: one process's share of the draws of a data-parallel global batch."""
        return Draws(*(v[rank::world] for v in self[:4]), self.num_scales)

    def to(self, device: torch.device) -> Draws:
        return Draws(*(to_device(v.contiguous(), device) for v in self[:4]), self.num_scales)


def _per_sample(t: torch.Tensor) -> torch.Tensor:
    """(B,) levels as a float32 (B,1,1,1) column, to scale a batch of masks."""
    return t.float().reshape(-1, 1, 1, 1)


class ConsistencyLoss:
    """L_CTS for CT, iCT or ECT. The teacher f^- is the target network (CT) or the online one (iCT, ECT)."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig):
        self.levels = level_sampler(model_cfg, train_cfg)            # (t_{n+1}, t_n) and lambda
        self.distance = objective_distance(train_cfg)                 # d
        self.masks = mask_coding(train_cfg.released.mask_encoding)    # m -> x^m
        self.alpha, self.seg_loss, self.anchor = train_cfg.alpha, train_cfg.seg_loss, train_cfg.anchor
        self.sigma_min = model_cfg.sigma_min
        self.share_signals = train_cfg.teacher_takes_online_signals
        ect_edm = train_cfg.objective == "ect" and train_cfg.ect.edm_precond
        self.preconditioning = EDMPrecond(model_cfg.sigma_data, model_cfg.c_noise) if ect_edm else None  # None: the net's

    def draw(self, step: int, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Draws:
        """The step's random draws, in this order: the level pairs of shape[0] samples, then one z of `shape`."""
        t_hi, t_lo, weight, num_scales = self.levels(step, shape[0], generator)
        return Draws(t_hi, t_lo, weight, torch.randn(shape, generator=generator), num_scales)

    def __call__(self, net: nn.Module, teacher: nn.Module, image: torch.Tensor, mask: torch.Tensor, step: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """L_CTS of one batch (steps 1-9) and its terms as 0-d tensors for the log."""
        x_m = self.masks.encode(mask)                                          # the mask as x^m
        t_hi, t_lo, weight, z, num_scales = self.draw(step, x_m.shape, generator).to(x_m.device)
        x_hi, x_lo = x_m + _per_sample(t_hi) * z, x_m + _per_sample(t_lo) * z   # one z for both levels
        dropout = RNGSnapshot(x_m.device)                                      # the online pass's dropout state
        online = net(x_hi, t_hi, image, preconditioning=self.preconditioning)  # f_theta(x_{n+1}, t_{n+1}) and y_hat
        shared = online.encoded if self.share_signals else None                # the online h(x^d) for f^-, or its own
        with torch.no_grad(), dropout.replay():                                # sg f^-(x_n, t_n), same dropout masks
            target = teacher(x_lo, t_lo.clamp(min=self.sigma_min), image, encoded=shared,
                             preconditioning=self.preconditioning).denoised
        target = torch.where((t_lo > 0).reshape(-1, 1, 1, 1), target, x_m)     # t_n = 0 (ECT's r): x^m itself
        l_ct = weight.float() * self.distance(online.denoised, target)         # lambda d
        off = torch.zeros_like(l_ct)
        l_s = aux_loss(online.aux_logits, mask, self.seg_loss) if self.alpha > 0 and online.aux_logits is not None else off
        beta, a = self.anchor.weight, self.anchor
        l_a = anchor_loss(online.denoised, mask, a.loss, a.logit_scale, self.masks) if beta > 0 else off
        loss = (l_ct + self.alpha * l_s + beta * l_a).mean()
        return loss, {"loss": loss.detach(), "loss_ct": l_ct.mean(), "loss_s": l_s.mean(), "loss_anchor": l_a.mean(),
                      "num_scales": num_scales, "t_hi_mean": t_hi.float().mean()}

"""Supervised U-Net baseline: the image encoder h with its head, trained alone.

This is the network that the released CTS code actually scores (its Dice is computed on the
auxiliary head `cal`, docs/departures.md row 4). Trained here with the standard supervised loss
L = BCE(logits, m) + (1 - soft Dice(sigmoid(logits), m)) by default, or with CTS's own
L_S = mean_px (y_hat - m)^2 (`loss="mse"`, docs/method.md section 1.3 step 9) for a like-for-like comparison.
The prediction is y_hat > 0.5, as for the CTS auxiliary head.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..losses import aux_loss, bce_dice_loss
from ..model.encoder import ImageEncoder
from ..sampling import Segmentation
from ..train import RunOptions, baseline_loss, fit

LOSSES = ("bce_dice", "mse")


@dataclass(frozen=True)
class SupervisedConfig:
    loss: str = "bce_dice"        # "bce_dice" (standard) or "mse" (CTS's L_S)
    dice_smooth: float = 1.0      # additive smoothing of the soft Dice (keeps empty masks finite)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown supervised loss {self.loss!r}; choose from {LOSSES}")


class SupervisedUNet(nn.Module):
    """y_hat = sigmoid(head(h(x^d))). Parameters are named `h.*`, as in CTSModel, so weights transfer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.h = ImageEncoder(cfg.in_channels, cfg.encoder)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits of y_hat, (B,1,H,W)."""
        return self.h(image)[1]


class SupervisedLoss:
    """The batch mean of the chosen per-sample loss; `loss(model, image, mask, step, generator) -> (loss, logs)`."""

    def __init__(self, cfg: SupervisedConfig = SupervisedConfig()):
        self.cfg = cfg

    def __call__(self, model, image, mask, step, generator=None):
        logits = model(image)
        per = aux_loss(logits, mask, "mse") if self.cfg.loss == "mse" else bce_dice_loss(logits, mask, self.cfg.dice_smooth)
        loss = per.mean()
        return loss, {"loss": loss.detach()}


def train_supervised(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set, run: RunOptions = RunOptions(),
                     cfg: SupervisedConfig = SupervisedConfig(), data_spec: str = "",
                     deadline: float | None = None) -> tuple[SupervisedUNet, dict]:
    """Train the supervised U-Net with the CTS run's batch size, optimiser, lr and EMA; returns (EMA model, summary)."""
    torch.manual_seed(train_cfg.seed)  # the initial weights depend on the seed only
    model = SupervisedUNet(model_cfg)
    torch.manual_seed(train_cfg.seed)  # and the loop starts from the seed's fresh RNG state (as it always has)
    return fit(model, baseline_loss(SupervisedLoss(cfg)), train_set, model_cfg, train_cfg, run, kind="supervised",
               extra=asdict(cfg), data_spec=data_spec, deadline=deadline)


@torch.no_grad()
def supervised_segment(model: SupervisedUNet, image: torch.Tensor, seeds=None) -> Segmentation:
    """Deterministic prediction y_hat > 0.5 in the Segmentation layout of ctslib.sampling (no sampling)."""
    prob = torch.sigmoid(model(image).float())
    mask = (prob > 0.5).float()
    zeros = torch.zeros_like(prob)
    return Segmentation(sample_mean=2 * prob - 1, prob=prob, mask=mask, std=zeros, vote_variance=zeros,
                        aux_prob=None, aux_mask=None, steps=1, members=1)

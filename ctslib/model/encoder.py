"""Image encoder h: an nnU-Net-like UNet on x^d giving multi-scale features and y_hat (docs/method.md section 2.2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from .layers import GroupNorm, norm_groups


def _conv_unit(cin: int, cout: int, cfg: EncoderConfig) -> nn.Sequential:
    """conv3x3 -> [Dropout2d] -> norm -> LeakyReLU(0.01) (nnU-Net v1 ConvDropoutNormNonlin order)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
    if cfg.dropout > 0:
        layers.append(nn.Dropout2d(cfg.dropout))
    layers.append(nn.BatchNorm2d(cout) if cfg.norm == "batch" else GroupNorm(norm_groups(cout, 8), cout))
    layers.append(nn.LeakyReLU(0.01, inplace=True))
    return nn.Sequential(*layers)


def encoder_widths(cfg: EncoderConfig) -> list[int]:
    """Encoder stage widths w_d = min(base 2^d, max_width), d = 0..pools-1."""
    return [min(cfg.base * 2**d, cfg.max_width) for d in range(cfg.pools)]


def feature_channels(cfg: EncoderConfig) -> dict[int, int]:
    """Channels E_s of the decoder feature e_s at scale s (resolution H / 2^s)."""
    w = encoder_widths(cfg)
    return {s: w[max(s - 1, 0)] for s in range(cfg.pools)}


class ImageEncoder(nn.Module):
    """h(x^d) -> ({s: e_s}, logits of y_hat). e_s has resolution H/2^s; y_hat = sigmoid(logits)."""

    def __init__(self, in_channels: int, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        w = encoder_widths(cfg)
        self.down = nn.ModuleList()
        cin = in_channels
        for d in range(cfg.pools):
            self.down.append(nn.Sequential(_conv_unit(cin, w[d], cfg), _conv_unit(w[d], w[d], cfg)))
            cin = w[d]
        wide = min(cfg.base * 2**cfg.pools, cfg.max_width)
        self.bottleneck = nn.Sequential(_conv_unit(w[-1], wide, cfg), _conv_unit(wide, w[-1], cfg))
        self.up = nn.ModuleList()
        for d in reversed(range(cfg.pools)):
            out = w[d - 1] if d > 0 else w[0]
            self.up.append(nn.Sequential(_conv_unit(2 * w[d], w[d], cfg), _conv_unit(w[d], out, cfg)))
        self.head = nn.Conv2d(w[0], 1, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        skips, x = [], image
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        feats: dict[int, torch.Tensor] = {}
        for s, stage in zip(reversed(range(self.cfg.pools)), self.up):
            skip = skips[s]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
            feats[s] = x
        return feats, self.head(x)

"""Fusing the multi-scale supervision signals e_s into g's decoder (docs/method.md section 2.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FUSIONS


class SEFusion(nn.Module):
    """h <- h + a * p, p = Conv1x1(e') (zero-init), a = sigmoid(W2 SiLU(W1 [GAP(h); GAP(p)])) (docs/method.md section 2.3).

    The zero-initialised projection makes CTS-M equal CTS-nM at init; the gate sees h, which
    carries the time FiLM, so the channel weighting can depend on the noise level.
    """

    def __init__(self, feat_ch: int, ch: int, reduction: int = 16):
        super().__init__()
        self.proj = nn.Conv2d(feat_ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        hidden = max(ch // reduction, 8)
        self.gate = nn.Sequential(nn.Linear(2 * ch, hidden), nn.SiLU(), nn.Linear(hidden, ch))

    def attention(self, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        u = torch.cat([h.mean(dim=(2, 3)), p.mean(dim=(2, 3))], dim=1)
        return torch.sigmoid(self.gate(u))[:, :, None, None]

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        p = self.proj(e)
        return h + self.attention(h, p) * p


class ConcatFusion(SEFusion):
    """h <- Conv1x1([h; a * p]) -> C, initialised to pass h through unchanged (docs/method.md section 2.3 'concat')."""

    def __init__(self, feat_ch: int, ch: int, reduction: int = 16):
        super().__init__(feat_ch, ch, reduction)
        self.mix = nn.Conv2d(2 * ch, ch, 1)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :ch, 0, 0] = torch.eye(ch)
            self.mix.bias.zero_()

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        p = self.proj(e)
        return self.mix(torch.cat([h, self.attention(h, p) * p], dim=1))


def tile_channels(e: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat e along channels until it has `channels` (the released 'add_tiled', cm/unet.py L800-833)."""
    reps = -(-channels // e.shape[1])
    return e.repeat(1, reps, 1, 1)[:, :channels]


def add_tiled(h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Released fusion: h + tile(e), no parameters, no gate."""
    return h + tile_channels(e, h.shape[1]).to(h.dtype)


def released_stem_signal(feats: dict[int, torch.Tensor], channels: int, size: tuple[int, int]) -> torch.Tensor | None:
    """Released stem injection: cat(up2(e_1), up2(e_1), up4(e_2)) at full resolution, tiled to `channels`."""
    if 1 not in feats or 2 not in feats:
        return None
    up = lambda e: F.interpolate(e, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    e1 = up(feats[1])
    return tile_channels(torch.cat([e1, e1, up(feats[2])], dim=1), channels)


# The learned fusion module of each name in config.FUSIONS (None: the parameter-free released `add_tiled`).
# Adding a fusion: its name in config.FUSIONS (what ModelConfig and the CLI accept) and its class here.
FUSION_MODULES: dict[str, type[nn.Module] | None] = {"se": SEFusion, "concat": ConcatFusion, "add_tiled": None}
assert set(FUSION_MODULES) == set(FUSIONS), "config.FUSIONS and fusion.FUSION_MODULES must name the same fusions"

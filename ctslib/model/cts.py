"""The CTS network: g (denoiser) + h (image encoder) + fusion + FF-Parser, and the consistency function f_theta.

f_theta(x, t; x^d) = c_skip(t) x + c_out(t) F_theta(cat(c_in(t) x, x^d), {e_s}, c_noise(t))
(docs/method.md section 1.2, section 1.3 steps 2-6).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import precond
from ..config import ModelConfig
from .denoiser import DenoiserUNet
from .encoder import ImageEncoder, feature_channels
from .ffparser import FFParser
from .fusion import FUSION_MODULES, add_tiled, released_stem_signal


@dataclass
class CTSOutput:
    denoised: torch.Tensor              # f_theta(x, t), (B,1,H,W), float32
    raw: torch.Tensor                   # F_theta, the network output
    aux_logits: torch.Tensor | None     # logits of y_hat (None for CTS-nM without aux head)
    encoded: tuple | None = None        # h(x^d) = ({e_s}, logits of y_hat) this pass used (None without h)

    @property
    def aux_prob(self) -> torch.Tensor | None:
        return None if self.aux_logits is None else torch.sigmoid(self.aux_logits.float())


class CTSModel(nn.Module):
    """One CTS model (online, target or EMA copy): g, h, fusion modules and FF-Parsers."""

    def __init__(self, cfg: ModelConfig, preconditioning: precond.Preconditioning | None = None):
        super().__init__()
        self.cfg = cfg
        self.preconditioning = preconditioning or precond.for_model(cfg)   # how F_theta becomes f_theta
        self.g = DenoiserUNet(1 + cfg.in_channels, cfg.image_size, cfg.denoiser)
        self.h = ImageEncoder(cfg.in_channels, cfg.encoder) if cfg.uses_encoder else None
        self.fusers = nn.ModuleDict()
        self.ffparsers = nn.ModuleDict()
        if cfg.uses_signals:
            for s, e_ch in feature_channels(cfg.encoder).items():
                if s not in self.g.level_channels:
                    continue
                ch = self.g.level_channels[s]
                fusion = FUSION_MODULES[cfg.fusion]
                if fusion is not None:
                    self.fusers[str(s)] = fusion(e_ch, ch, cfg.se_reduction)
                if cfg.uses_ffparser:
                    r = cfg.image_size // 2**s
                    self.ffparsers[str(s)] = FFParser(e_ch, r, r, cfg.ffp_init)
        self.sites = sorted(int(s) for s in feature_channels(cfg.encoder) if s in self.g.level_channels) \
            if cfg.uses_signals else []

    # -- the two networks -------------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor] | None:
        """({e_s}, logits of y_hat) = h(x^d): independent of the noise, so computed once per call (step 4)."""
        return None if self.h is None else self.h(image)

    def _signal(self, feats: dict[int, torch.Tensor], s: int) -> torch.Tensor:
        e = feats[s]
        if str(s) in self.ffparsers:
            e = self.ffparsers[str(s)](e)
        return e.detach() if self.cfg.detach_signals else e

    def network(self, x_in: torch.Tensor, image: torch.Tensor, c_noise: torch.Tensor, encoded=None):
        """F_theta(cat(x_in, x^d), {e_s}, c_noise) and the aux logits (steps 3-5)."""
        if encoded is None:
            encoded = self.encode(image)
        feats, logits = encoded if encoded is not None else (None, None)

        def inject(site, h):
            if site == "stem":
                if self.cfg.fusion != "add_tiled":
                    return h
                sig = released_stem_signal({s: self._signal(feats, s) for s in (1, 2) if s in feats}, h.shape[1], h.shape[-2:])
                return h if sig is None else h + sig.to(h.dtype)
            if site not in self.sites:
                return h
            e = self._signal(feats, site)
            if self.cfg.fusion == "add_tiled":
                return add_tiled(h, e)
            return self.fusers[str(site)](h, e.to(h.dtype))

        x = torch.cat([x_in.to(image.dtype), image], dim=1)
        out = self.g(x, c_noise, inject if self.sites else None)
        return out, logits

    # -- the consistency function ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma: torch.Tensor, image: torch.Tensor, encoded=None,
                preconditioning: precond.Preconditioning | None = None) -> CTSOutput:
        """f_theta(x, sigma; x^d) = c_skip x + c_out F_theta(c_in x, x^d, c_noise): x is the noisy mask (B,1,H,W),
        sigma (B,) noise levels. `preconditioning` replaces the model's own (ECT trains in EDM's scalings)."""
        pre = preconditioning or self.preconditioning
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma64 = sigma.double()
        skip, out, c_in = pre.scalings(sigma64)
        x_in = c_in.to(torch.float32).reshape(-1, 1, 1, 1) * x.float()
        if encoded is None:
            encoded = self.encode(image)
        raw, logits = self.network(x_in, image, pre.c_noise(sigma64).float(), encoded)
        return CTSOutput(denoised=precond.apply_consistency(x, raw, skip, out), raw=raw, aux_logits=logits,
                         encoded=encoded)


def count_parameters(model: CTSModel) -> dict[str, int]:
    """Parameter counts: denoiser g, image encoder h, fusion + FF-Parser, total (docs/method.md section 2.6)."""
    n = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
    counts = {"denoiser": n(model.g), "image_encoder": n(model.h), "fusion": n(model.fusers), "ffparser": n(model.ffparsers)}
    counts["total"] = sum(counts.values())
    return counts

"""Multistep diffusion segmentation baseline (MedSegDiff-style) with EDM training and sampling.

The network is exactly CTS's (a `CTSModel`, variant cts_m by default: g with early fusion, h with
its signals and auxiliary head); only the objective and the sampler differ, so "one step vs
many" is compared on the same backbone. Karras et al. 2022 ("EDM"):

    D(x; sigma, x^d) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, x^d, c_noise(sigma))   (EDM eq. 7)
    c_skip = sd^2/(sigma^2+sd^2), c_out = sigma sd/sqrt(sigma^2+sd^2), c_in = 1/sqrt(sigma^2+sd^2),
    c_noise = ln(sigma)/4                                                                    (EDM Table 1)
    L = E_sigma,n [ lambda(sigma) ||D(x^m + sigma n; sigma) - x^m||^2 ],  ln sigma ~ N(P_mean, P_std^2),
    lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2                                          (EDM eq. 8)

plus alpha * L_S on the auxiliary head when the network has one (as CTS-M trains it).
Noise levels: P_mean = 1.0, P_std = 2.0 instead of EDM's image defaults (-1.2, 1.2). MedSegDiff
trains DDPM with t uniform over 1000 linear-beta steps, whose equivalent sigma has median ~3.4
(ln sigma ~ 1.2) and spans ~0.3-60 for t in [100, 900]; (1.0, 2.0) covers the same range. With
EDM's defaults sigma > 20 is almost never trained although sampling starts at sigma_max = 80, and
for masks the high-noise prediction E[x^m | x^d] is the segmentation itself, so the baseline would
lose most at the levels its sampler starts from. `EDMConfig(p_mean=-1.2, p_std=1.2)` restores EDM's choice. Sampling is
the deterministic Heun sampler (EDM Algorithm 1, S_churn = 0) or Euler over N Karras levels
sigma_max = t_0 > ... > t_{N-1} = sigma_min, t_N = 0. Defaults: N = 20 Heun steps (39 network
evaluations per sample; EDM uses 18 for CIFAR-10) and an ensemble of 5 samples per image, as in
MedSegDiff. The mask is the ensemble mean > 0 (masks are x^m = 2m - 1 in {-1,+1}).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
from torch import nn

from .. import precond
from ..config import ModelConfig, TrainConfig
from ..device import to_device
from ..losses import aux_loss
from ..masks import PM1
from ..model import CTSModel, CTSOutput
from ..sampling import MEMBER_STRIDE, Segmentation, derive_seed, seeded_noise
from ..train import RunOptions, baseline_loss, fit

SOLVERS = ("heun", "euler")


@dataclass(frozen=True)
class EDMConfig:
    """EDM training and sampling constants (Karras et al. 2022, Table 1 and Algorithm 1)."""
    p_mean: float = 1.0           # ln sigma ~ N(P_mean, P_std^2) during training (EDM images: -1.2, 1.2)
    p_std: float = 2.0
    sigma_min: float = precond.SIGMA_MIN      # sampler levels (EDM's and the consistency models' range)
    sigma_max: float = precond.SIGMA_MAX
    rho: float = precond.RHO
    steps: int = 20               # N sampler steps (Heun: 2N - 1 network evaluations)
    solver: str = "heun"
    members: int = 5              # ensemble size
    alpha: float | None = None    # weight of L_S on the aux head; None: TrainConfig.alpha (0 without aux head)

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose from {SOLVERS}")
        if self.steps < 1:
            raise ValueError("the sampler needs at least one step")


def network_evaluations(steps: int, solver: str = "heun") -> int:
    """Network evaluations per sample: N (Euler) or 2N - 1 (Heun; the last step to sigma = 0 is Euler)."""
    return steps if solver == "euler" else 2 * steps - 1


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2  (EDM eq. 8 with Table 1's choice)."""
    sigma = sigma.double()
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_sample_sigma(batch: int, generator: torch.Generator | None, p_mean: float, p_std: float) -> torch.Tensor:
    """sigma = exp(P_mean + P_std n), n ~ N(0,1): EDM's lognormal training noise levels (float64)."""
    return torch.exp(p_mean + p_std * torch.randn(batch, generator=generator, dtype=torch.float64))


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """Descending sampler levels t_0 = sigma_max > ... > t_{N-1} = sigma_min, then t_N = 0 (EDM eq. 5)."""
    if steps == 1:
        levels = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        levels = precond.karras_grid(steps, sigma_min, sigma_max, rho).flip(0)
    return torch.cat([levels, torch.zeros(1, dtype=torch.float64)])


class EDMDenoiser(nn.Module):
    """D(x; sigma, x^d) = a CTSModel (same g, h, fusion, same forward) in EDM's preconditioning, c_noise = ln(sigma)/4."""

    def __init__(self, cfg: ModelConfig, edm: EDMConfig = EDMConfig()):
        super().__init__()
        self.edm = edm
        cfg = replace(cfg, c_noise="edm")
        self.net = CTSModel(cfg, precond.EDMPrecond(cfg.sigma_data, cfg.c_noise))
        self.cfg = self.net.cfg

    @property
    def h(self):
        return self.net.h

    def encode(self, image: torch.Tensor):
        return self.net.encode(image)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, image: torch.Tensor, encoded=None) -> CTSOutput:
        """D(x; sigma) = c_skip x + c_out F(c_in x, x^d, c_noise), scalings in float64 (EDM eq. 7)."""
        return self.net(x, sigma, image, encoded)


class EDMLoss:
    """lambda(sigma) mean_px (D(x^m + sigma n) - x^m)^2 + alpha L_S, batch mean; returns (loss, terms for the log)."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, edm: EDMConfig = EDMConfig()):
        self.edm, self.sigma_data, self.seg_loss = edm, model_cfg.sigma_data, train_cfg.seg_loss
        self.alpha = (train_cfg.alpha if model_cfg.has_aux_head else 0.0) if edm.alpha is None else edm.alpha

    def __call__(self, model, image, mask, step, generator=None):
        device = image.device
        x_clean = PM1.encode(mask.float())
        sigma = edm_sample_sigma(image.shape[0], generator, self.edm.p_mean, self.edm.p_std)
        noise = to_device(torch.randn(tuple(x_clean.shape), generator=generator), device)
        sigma_d = to_device(sigma, device)
        out = model(x_clean + sigma_d.float().reshape(-1, 1, 1, 1) * noise, sigma_d, image)
        weight = to_device(edm_loss_weight(sigma, self.sigma_data), device).float()
        l_dm = weight * (out.denoised.float() - x_clean).pow(2).flatten(1).mean(1)
        if out.aux_logits is not None and self.alpha > 0:
            l_s = aux_loss(out.aux_logits, mask, self.seg_loss)
        else:
            l_s = torch.zeros_like(l_dm)
        loss = (l_dm + self.alpha * l_s).mean()
        return loss, {"loss": loss.detach(), "loss_dm": l_dm.mean(), "loss_s": l_s.mean()}


def train_diffusion(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set, run: RunOptions = RunOptions(),
                    edm: EDMConfig = EDMConfig(), data_spec: str = "",
                    deadline: float | None = None) -> tuple[EDMDenoiser, dict]:
    """Train the EDM denoiser with the CTS run's batch size, optimiser, lr and EMA; returns (EMA model, summary)."""
    torch.manual_seed(train_cfg.seed)  # the initial weights depend on the seed only
    model = EDMDenoiser(model_cfg, edm)
    torch.manual_seed(train_cfg.seed)  # and the loop starts from the seed's fresh RNG state (as it always has)
    return fit(model, baseline_loss(EDMLoss(model_cfg, train_cfg, edm)), train_set, model_cfg, train_cfg, run,
               kind="diffusion", extra=asdict(edm), data_spec=data_spec, deadline=deadline)


@torch.no_grad()
def edm_sample(model: EDMDenoiser, image: torch.Tensor, steps: int | None = None, seeds: Sequence[int] | None = None,
               solver: str | None = None, encoded=None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Implements Algorithm 1 (deterministic Heun, or Euler) of Karras et al. (2022); returns clamp(x_N, -1, 1).

    x_0 = t_0 z; d_i = (x_i - D(x_i; t_i)) / t_i; x_{i+1} = x_i + (t_{i+1} - t_i) d_i, and for Heun, where
    t_{i+1} > 0, x_{i+1} = x_i + (t_{i+1} - t_i)(d_i + d'_i)/2 with d'_i evaluated at (x_{i+1}, t_{i+1}).
    `noise` (B,1,H,W) replaces the seeded z (for timing without host-side noise generation).
    """
    edm = model.edm
    steps = edm.steps if steps is None else int(steps)
    solver = edm.solver if solver is None else solver
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose from {SOLVERS}")
    b, _, h, w = image.shape
    if noise is None:
        seeds = list(range(b)) if seeds is None else list(seeds)
        noise = seeded_noise((b, 1, h, w), seeds, image.device)
    if encoded is None:
        encoded = model.encode(image)
    t = karras_sigmas(steps, edm.sigma_min, edm.sigma_max, edm.rho).tolist()
    x = t[0] * noise.float()

    def denoise(x, level):
        return model(x, torch.full((b,), level, device=image.device, dtype=torch.float64), image, encoded=encoded).denoised

    for i in range(steps):
        t_cur, t_next = t[i], t[i + 1]
        d = (x - denoise(x, t_cur)) / t_cur
        x_next = x + (t_next - t_cur) * d
        if solver == "heun" and t_next > 0:
            d_prime = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x + (t_next - t_cur) * 0.5 * (d + d_prime)
        x = x_next
    return x.clamp(-1, 1)


@torch.no_grad()
def diffusion_segment(model: EDMDenoiser, image: torch.Tensor, steps: int | None = None, members: int | None = None,
                      seeds: Sequence[int] | None = None, solver: str | None = None, vote: bool = False) -> Segmentation:
    """Segment a batch with an E-member ensemble of N-step samples; same Segmentation as ctslib.sampling.segment.

    Member e of image i starts from the seed seeds[i] * 101 + e (the CTS ensemble's convention); the E
    members run as one batch of E*B images.
    """
    b = image.shape[0]
    members = model.edm.members if members is None else int(members)
    steps = model.edm.steps if steps is None else int(steps)
    seeds = list(range(b)) if seeds is None else list(seeds)
    encoded = model.encode(image)
    thr = PM1.threshold
    # all members in one batch (member-major), so each network evaluation sees E*B images
    rep = lambda t: t.repeat(members, *([1] * (t.ndim - 1)))  # noqa: E731
    enc_rep = None if encoded is None else ({s: rep(f) for s, f in encoded[0].items()}, rep(encoded[1]))
    x = edm_sample(model, rep(image), steps, [derive_seed(s, e, MEMBER_STRIDE) for e in range(members) for s in seeds], solver, enc_rep)
    samples = x.reshape(members, b, *x.shape[1:])
    mean = samples.mean(0)
    q = (samples > thr).float().mean(0)
    mask = (q > 0.5).float() if vote else (mean > thr).float()
    aux_prob = None if encoded is None else torch.sigmoid(encoded[1].float())
    return Segmentation(sample_mean=mean, prob=PM1.probability(mean), mask=mask,
                        std=samples.std(0, unbiased=False), vote_variance=q * (1 - q), aux_prob=aux_prob,
                        aux_mask=None if aux_prob is None else (aux_prob > 0.5).float(), steps=steps, members=members)

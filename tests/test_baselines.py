"""Baselines: the supervised U-Net learns, the EDM diffusion baseline samples deterministically
with the documented number of network evaluations, FLOPs are counted, packed data round-trip, and any
segmenter is scored exactly like CTS."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ctslib import precond
from benchmarks.measure import count_flops, time_call
from benchmarks.packed import PackedDataset, open_any, pack_splits
from ctslib.baselines import (EDMConfig, EDMDenoiser, EDMLoss, SupervisedUNet, cts_segmenter, diffusion_segment,
                              evaluate_segmenter, load_baseline, supervised_segmenter, train_diffusion,
                              train_supervised)
from ctslib.baselines.diffusion import edm_loss_weight, karras_sigmas, network_evaluations
from ctslib.config import preset
from ctslib.data import open_dataset
from ctslib.evaluate import EvalOptions, evaluate
from ctslib.losses import bce_dice_loss, soft_dice_loss
from ctslib.model import CTSModel
from ctslib.sampling import Segmentation
from ctslib.train import RunOptions

FAST_EVAL = EvalOptions(hd95=False, n_bootstrap=0, progress=False, batch_size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfgs(variant="cts_m", **train):
    m, t = preset("test32", variant, 4)
    return m, replace(t, **train)


def _perturbed(model: torch.nn.Module, scale: float = 0.05) -> torch.nn.Module:
    """Add N(0, scale^2) to every weight: zero-initialised output layers would make F = 0 exactly."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def test_supervised_unet_learns_phantoms(tmp_path):
    m, t = _cfgs(steps=100, ema_rate=0.9)
    model, summary = train_supervised(m, t, open_dataset("phantom", "train", 32),
                                      RunOptions(out=str(tmp_path), device="cpu", progress=False))
    assert summary["step"] == 100 and not summary["truncated"]
    res = evaluate_segmenter(supervised_segmenter(model), open_dataset("phantom", "test", 32), FAST_EVAL)
    assert res["unet"]["per_slice"]["dice"]["mean"] > 0.8
    again, _ = load_baseline(tmp_path / "ckpt.pt")
    conv = next(p for p in model.parameters() if p.ndim == 4 and p.shape[-1] > 1)
    fmt = torch.channels_last if conv.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    again.to(memory_format=fmt)    # the layout picks the conv kernels; compare like with like, bitwise
    image = open_dataset("phantom", "test", 32)[0][0][None]
    with torch.no_grad():
        assert torch.equal(again(image), model(image))


def test_supervised_losses():
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    assert torch.allclose(soft_dice_loss(mask, mask, smooth=0.0), torch.zeros(2))
    assert torch.allclose(soft_dice_loss(1 - mask, mask, smooth=0.0), torch.ones(2))
    logits = 20 * (2 * mask - 1)
    assert bce_dice_loss(logits, mask).max() < 1e-3
    assert SupervisedUNet(preset("test32", "cts_m", 4)[0])(torch.randn(2, 4, 32, 32)).shape == (2, 1, 32, 32)


def test_edm_constants():
    # lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2: 5 at sigma = 1 (sd = 0.5), -> 1/sd^2 = 4 for large sigma
    assert edm_loss_weight(torch.tensor(1.0), 0.5).item() == pytest.approx(5.0)
    assert edm_loss_weight(torch.tensor(1e4), 0.5).item() == pytest.approx(4.0, rel=1e-6)
    levels = karras_sigmas(5, 0.002, 80.0, 7.0)
    assert levels[0] == 80.0 and levels[-2] == pytest.approx(0.002) and levels[-1] == 0.0
    assert torch.all(levels[:-1] > levels[1:])
    assert network_evaluations(20, "heun") == 39 and network_evaluations(20, "euler") == 20


def test_edm_preconditioning_formula():
    """D = c_skip x + c_out F(c_in x, x^d, ln(sigma)/4) with the EDM scalings, on the CTS network."""
    m, _ = _cfgs()
    torch.manual_seed(1)
    model = _perturbed(EDMDenoiser(m).eval())
    with torch.no_grad():
        x, image = torch.randn(3, 1, 32, 32), torch.randn(3, 4, 32, 32)
        sigma = torch.tensor([0.01, 1.0, 50.0], dtype=torch.float64)
        skip, out, c_in = precond.edm_scalings(sigma, 0.5)
        raw, _ = model.net.network((c_in.float().reshape(-1, 1, 1, 1) * x), image, 0.25 * torch.log(sigma).float())
        expect = skip.float().reshape(-1, 1, 1, 1) * x + out.float().reshape(-1, 1, 1, 1) * raw
        got = model(x, sigma, image).denoised
    assert torch.allclose(got, expect, atol=1e-6)
    assert model.net.cfg.c_noise == "edm"


class _Counting(torch.nn.Module):
    """Counts denoiser calls of an EDMDenoiser."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.edm, self.cfg, self.calls = inner, inner.edm, inner.cfg, 0

    @property
    def h(self):
        return self.inner.h

    def encode(self, image):
        return self.inner.encode(image)

    def forward(self, *a, **k):
        self.calls += 1
        return self.inner(*a, **k)


@pytest.mark.parametrize("solver,steps", [("heun", 4), ("euler", 3)])
def test_diffusion_sampler_shapes_determinism_and_cost(solver, steps):
    m, _ = _cfgs()
    torch.manual_seed(0)
    model = _Counting(EDMDenoiser(m, EDMConfig(steps=steps, solver=solver, members=3)).eval())
    image = torch.randn(2, 4, 32, 32)
    seg = diffusion_segment(model, image, seeds=[7, 8])
    assert isinstance(seg, Segmentation) and seg.steps == steps and seg.members == 3
    assert model.calls == network_evaluations(steps, solver)   # the 3 members run as one batch
    assert seg.mask.shape == (2, 1, 32, 32) and set(seg.mask.unique().tolist()) <= {0.0, 1.0}
    assert seg.aux_mask is not None and seg.aux_mask.shape == (2, 1, 32, 32)
    assert seg.sample_mean.abs().max() <= 1.0
    again = diffusion_segment(model, image, seeds=[7, 8])
    assert torch.equal(seg.sample_mean, again.sample_mean) and torch.equal(seg.mask, again.mask)
    other = diffusion_segment(model, image, seeds=[9, 10])
    assert not torch.equal(seg.sample_mean, other.sample_mean)
    # an image's result does not depend on its batch neighbours
    single = diffusion_segment(model, image[:1], seeds=[7])
    assert torch.allclose(single.sample_mean, seg.sample_mean[:1], atol=1e-5)


def test_diffusion_trains_and_reloads(tmp_path):
    m, t = _cfgs(steps=6)
    ds = open_dataset("phantom:32", "train", 32)
    model, summary = train_diffusion(m, t, ds, RunOptions(out=str(tmp_path), device="cpu", progress=False),
                                     EDMConfig(steps=2, members=1))
    assert summary["step"] == 6 and math.isfinite(summary["last"]["loss"]) and summary["last"]["loss_s"] > 0
    again, state = load_baseline(tmp_path / "ckpt.pt")
    assert state["kind"] == "diffusion" and again.edm.steps == 2
    image = ds[0][0][None]
    assert torch.equal(diffusion_segment(again, image, seeds=[1]).mask, diffusion_segment(model, image, seeds=[1]).mask)
    # without an aux head (CTS-nM network) L_S is off
    m_nm, _ = _cfgs("cts_nm")
    assert EDMLoss(m_nm, t).alpha == 0.0 and EDMLoss(m, t).alpha == t.alpha


def test_flop_counting():
    m, _ = _cfgs()
    with torch.device("meta"):
        model = CTSModel(m)
        x, image = torch.randn(1, 1, 32, 32), torch.randn(1, 4, 32, 32)
        flops = count_flops(lambda: model(x, torch.full((1,), 80.0), image))
    assert flops > 0
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    assert count_flops(lambda: conv(torch.randn(2, 4, 16, 16))) == 2 * 2 * 8 * 16 * 16 * 4 * 9
    t = time_call(lambda: conv(torch.randn(1, 4, 16, 16)), torch.device("cpu"), warmup=1, repeats=3)
    assert t["repeats"] == 3 and 0 < t["min_ms"] <= t["median_ms"] <= t["max_ms"]


def test_packed_roundtrip(tmp_path):
    path = tmp_path / "ph.npz"
    meta = pack_splits("phantom:12", 32, ("train", "test"), path)
    assert meta["splits"]["test"]["items"] == 12
    ref = open_dataset("phantom:12", "test", 32)
    ds = PackedDataset(path, "test")
    assert len(ds) == 12 and ds.in_channels == 4 and ds.image_size == 32 and ds.source_spec == "phantom:12"
    for i in range(len(ds)):
        a, m, info = ds[i]
        b, n, ref_info = ref[i]
        assert torch.equal(m, n) and (info["case"], info["slice"]) == (ref_info["case"], ref_info["slice"])
        span = (b.amax(dim=(1, 2)) - b.amin(dim=(1, 2)))[:, None, None]
        assert torch.all((a - b).abs() <= span / 510 + 1e-5)
    assert len(open_any(f"packed:{path}", "train", 32)) == 12
    with pytest.raises(ValueError, match="packed at 32 px"):
        open_any(f"packed:{path}", "train", 64)
    with pytest.raises(ValueError, match="no split 'val'"):
        PackedDataset(path, "val")


def test_evaluate_segmenter_matches_ctslib_evaluate():
    m, _ = _cfgs()
    torch.manual_seed(0)
    model = _perturbed(CTSModel(m).eval())
    ds = open_dataset("phantom:16", "test", 32)
    opts = replace(FAST_EVAL, outputs=("one_step", "ensemble", "aux_head"), members=2, batch_size=5)
    ours = evaluate_segmenter(cts_segmenter(model, opts.outputs, members=2), ds, opts)
    theirs = evaluate(model, ds, "pm1", opts, torch.device("cpu"))
    assert set(ours) == set(theirs)
    for name in theirs:
        assert ours[name]["per_slice"]["dice"] == theirs[name]["per_slice"]["dice"]
        assert ours[name]["per_volume"]["dice"] == theirs[name]["per_volume"]["dice"]
    assert np.isfinite(ours["one_step"]["per_slice"]["dice"]["mean"])

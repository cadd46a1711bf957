"""The cost of a training step (benchmarks/cost.py) and the consistency head g run at a lower resolution
(DenoiserConfig.downscale)."""
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ctslib.config import DenoiserConfig, model_config_from_dict, override, preset
from ctslib.model import CTSModel
from ctslib.model.denoiser import DenoiserUNet

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _cost():
    spec = importlib.util.spec_from_file_location("bench_cost", REPO / "benchmarks" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_downscaled_g_runs_at_the_lower_resolution_and_injects_every_signal_at_its_scale():
    """downscale 2: g's levels sit at the image's scales 1 and 2, and its upsampled output stage is scale 0."""
    cfg = DenoiserConfig(base=8, mult=(1, 2), attn_resolutions=(), downscale=2)
    g = DenoiserUNet(4, 32, cfg)
    seen = []

    def inject(site, h):
        seen.append((site, tuple(h.shape[-2:])))
        return h
    out = g(torch.randn(2, 4, 32, 32), torch.zeros(2), inject)
    assert out.shape == (2, 1, 32, 32)
    assert seen == [("stem", (16, 16)), (2, (8, 8)), (1, (16, 16)), (0, (32, 32))]
    assert g.level_channels == {2: 16, 1: 8, 0: 8}
    plain = DenoiserUNet(4, 32, replace(cfg, downscale=1))
    assert plain.level_channels == {1: 16, 0: 8}
    with pytest.raises(ValueError, match="power of 2"):
        DenoiserUNet(4, 32, replace(cfg, downscale=3))


def test_cts_m_with_a_downscaled_g_uses_every_signal_of_h_and_keeps_the_boundary_condition():
    mcfg, _ = preset("test32", "cts_m", 3)
    mcfg = override(mcfg, ["denoiser.base=8", "denoiser.mult=1", "denoiser.downscale=4"])
    assert mcfg.denoiser.mult == (1,) and mcfg.denoiser.downscale == 4
    torch.manual_seed(0)
    model = CTSModel(mcfg)
    assert model.sites == [0, 1]                      # g at 8 px; h's e_1 (16 px) and e_0 (32 px) on the way up
    for p in [*model.fusers.parameters(), *model.g.out_conv.parameters()]:    # zero-initialised: give them values
        torch.nn.init.normal_(p, std=0.1)
    x, image = torch.randn(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    out = model(x, torch.full((2,), 80.0), image)
    assert out.denoised.shape == (2, 1, 32, 32) and out.aux_logits.shape == (2, 1, 32, 32)
    assert torch.allclose(model(x, torch.full((2,), mcfg.sigma_min), image).denoised, x, atol=1e-5)
    feats, logits = model.encode(image)
    for s in (0, 1):                                  # each of h's signals reaches the output
        bumped = {k: e + (k == s) for k, e in feats.items()}
        moved = model(x, torch.full((2,), 80.0), image, encoded=(bumped, logits)).denoised - out.denoised
        assert moved.abs().max() > 1e-3, s


def test_downscale_is_a_saved_field_and_older_configs_default_to_full_resolution():
    mcfg, _ = preset("tiny64", "cts_m", 1)
    saved = json.loads(json.dumps(mcfg.__dict__, default=lambda o: o.__dict__))
    del saved["denoiser"]["downscale"]                # a checkpoint written before the option
    assert model_config_from_dict(saved).denoiser.downscale == 1
    with pytest.raises(ValueError, match="comma-separated integers"):
        override(mcfg, ["denoiser.mult=1,two"])


def test_cost_counts_flops_and_times_a_smaller_g_against_the_supervised_step(tmp_path):
    cost = _cost()
    assert cost.parse_config("g8q:denoiser.base=8,denoiser.mult=1,2,denoiser.downscale=4") == \
        ("g8q", ["denoiser.base=8", "denoiser.mult=1,2", "denoiser.downscale=4"])
    out = tmp_path / "cost.json"
    assert cost.main(["--data", "phantom:16", "--preset", "test32", "--threads", "1", "--steps", "2", "--repeats", "1",
                      "--warmup", "1", "--config", "preset:", "--config", "half:denoiser.downscale=2",
                      "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    rows = {row["name"]: row for row in r["rows"]}
    assert set(rows) == {"supervised", "preset", "half"} and r["threads"] == 1
    assert rows["half"]["set"] == ["denoiser.downscale=2"]
    full, half, sup = (rows[k]["gflop_per_step"] for k in ("preset", "half", "supervised"))
    # g's convolutions at a quarter of the pixels: well under half the FLOPs; h's share is unchanged
    assert half["total"] < 0.5 * full["total"] and sup["total"] < half["total"]
    assert half["parts"]["online_h_fwd_bwd"] == pytest.approx(full["parts"]["online_h_fwd_bwd"])
    assert all(row["cpu_ms_per_step"] > 0 and row["wall_ms_per_step"] > 0 for row in r["rows"])
    assert rows["supervised"]["cpu_ratio_to_supervised"] == 1.0

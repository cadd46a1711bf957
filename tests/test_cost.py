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


def test_step_flops_count_no_teacher_h_when_the_teacher_takes_the_online_signals():
    """ct.teacher_signals="online": the measured step has one h forward fewer, and the parts still add up."""
    cost = _cost()
    mcfg, tcfg = preset("test32-lowres-g")
    data = cost.open_any("phantom:8", "train", mcfg.image_size)
    own = cost.step_flops("cts_m", mcfg, tcfg, data, torch.device("cpu"))
    shared = cost.step_flops("cts_m", mcfg, replace(tcfg, ct=replace(tcfg.ct, teacher_signals="online")), data,
                             torch.device("cpu"))
    assert shared["parts"]["teacher_h_forward"] == 0 < own["parts"]["teacher_h_forward"]
    assert shared["total"] == pytest.approx(own["total"] - own["parts"]["teacher_h_forward"])
    for r in (own, shared):
        assert sum(r["parts"][k] for k in ("online_g_fwd_bwd", "online_h_fwd_bwd", "teacher_forward")) == \
            pytest.approx(r["total"])
    assert shared["parts"]["online_g_fwd_bwd"] == pytest.approx(own["parts"]["online_g_fwd_bwd"])


def test_equal_compute_rows_compare_seed_by_seed():
    """paper.equal_compute_rows: the per-seed differences, their mean and the verdict, from a quality.py file."""
    from ctslib import paper
    path = REPO / "benchmarks" / "results" / "cost_sweep" / "budget" / "lgg_val_test32-lowres-g_5000.json"
    d = json.loads(path.read_text())
    rows = {r["row"]: r for r in d["rows"]}
    one = {e["seed"]: e["outputs"]["one_step"]["dice_mean"] for e in rows["cts_m"]["per_seed"]}
    for got in paper.equal_compute_rows(path):
        other = rows["supervised" if got["comparison"] == "equal steps" else "supervised_same_seconds"]
        unet = {e["seed"]: e["outputs"]["unet"]["dice_mean"] for e in other["per_seed"]}
        diffs = [100 * (one[s] - unet[s]) for s in sorted(one)]
        assert got["per-seed difference (points)"] == ", ".join(f"{x:+.1f}" for x in diffs)
        assert got["mean difference (points)"] == f"{sum(diffs) / len(diffs):+.1f}"
        assert got["verdict"] == ("agrees" if min(diffs) > 0 else "disagrees" if max(diffs) < 0 else "inconclusive")
        assert (got["split"], got["CTS-M steps"], got["data"], got["preset"]) == ("val", 5000, "lgg", "test32-lowres-g")
    # a run of test32 whose --model-set options make it test32-lowres-g is named so
    sweep = paper.equal_compute_rows(path.parents[1] / "lgg_val_g16m1e.json")
    assert {r["preset"] for r in sweep} == {"test32-lowres-g"} and {r["CTS-M steps"] for r in sweep} == {500}
    assert {r["preset"] for r in paper.equal_compute_rows(path.parents[1] / "lgg_val_g8h.json")} == \
        {"test32 with denoiser.base=8 denoiser.downscale=2"}

"""Network structure: parameter counts (docs/method.md sections 2.6 and 7) and the init equivalences nM = M = FM."""
from dataclasses import replace

import pytest
import torch

from ctslib.config import preset
from ctslib.model import CTSModel, count_parameters
from ctslib.model.ffparser import FFParser


def test_released256_parameter_counts():
    counts = count_parameters(CTSModel(preset("released256")[0]))
    assert counts["denoiser"] == 54_414_849
    assert counts["image_encoder"] == 5_353_760
    assert counts["total"] == 59_768_609


def test_ffparser_cost_at_released_sites():
    counts = count_parameters(CTSModel(preset("released256", "cts_fm")[0]))
    assert counts["ffparser"] == 3_055_616


def test_cts_nm_has_no_encoder_unless_aux_head():
    cfg = preset("test32", "cts_nm")[0]
    assert CTSModel(cfg).h is None
    assert CTSModel(replace(cfg, aux_head=True)).h is not None


def _inputs(cfg, b=3):
    g = torch.Generator().manual_seed(3)
    n = cfg.image_size
    return (torch.randn(b, 1, n, n, generator=g), torch.tensor([80.0, 1.3, 0.01])[:b],
            torch.randn(b, cfg.in_channels, n, n, generator=g))


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.1)


def test_cts_m_equals_cts_nm_at_init():
    cfg_m = preset("test32", "cts_m")[0]
    m = CTSModel(cfg_m).eval()
    _randomize(m.g)  # non-trivial g, but the fusion projections stay zero-initialised
    nm = CTSModel(replace(cfg_m, variant="cts_nm")).eval()
    nm.g.load_state_dict(m.g.state_dict())
    x, s, img = _inputs(cfg_m)
    assert torch.equal(m(x, s, img).denoised, nm(x, s, img).denoised)
    # and the check can fail: a non-zero projection changes the output
    with torch.no_grad():
        for f in m.fusers.values():
            f.proj.weight.normal_(0, 0.5)
    assert not torch.allclose(m(x, s, img).denoised, nm(x, s, img).denoised)


@pytest.mark.parametrize("fusion", ["se", "concat"])
def test_identity_ffparser_makes_fm_equal_m(fusion):
    cfg = replace(preset("test32", "cts_m")[0], fusion=fusion)
    m = CTSModel(cfg).eval()
    _randomize(m)  # signals now reach the output
    fm = CTSModel(replace(cfg, variant="cts_fm")).eval()
    missing, unexpected = fm.load_state_dict(m.state_dict(), strict=False)
    assert all(k.startswith("ffparsers.") for k in missing) and not unexpected
    x, s, img = _inputs(cfg)
    ref = m(x, s, img).denoised
    same = (fm(x, s, img).denoised - ref).abs().max().item()
    assert same < 1e-5
    # the check can fail: MedSegDiff's N(0, 0.02^2) init damps the signals, so the output moves
    msd = CTSModel(replace(cfg, variant="cts_fm", ffp_init="msd")).eval()
    msd.load_state_dict(m.state_dict(), strict=False)
    moved = (msd(x, s, img).denoised - ref).abs().max().item()
    assert moved > 1e-4 and moved > 100 * same, (moved, same)


def test_ffparser_non_square_identity():
    e = torch.randn(2, 3, 8, 12)
    torch.testing.assert_close(FFParser(3, 8, 12)(e), e, rtol=1e-5, atol=1e-5)


def test_add_tiled_released_mode_runs_and_uses_signals():
    cfg = replace(preset("test32")[0], fusion="add_tiled", detach_signals=True)
    model = CTSModel(cfg).eval()
    x, s, img = _inputs(cfg)
    out = model(x, s, img)
    assert out.denoised.shape == (3, 1, 32, 32) and out.aux_prob.shape == (3, 1, 32, 32)
    assert count_parameters(model)["fusion"] == 0


def test_boundary_condition_through_the_model():
    cfg = preset("test32")[0]
    model = CTSModel(cfg).eval()
    _randomize(model)
    x, _, img = _inputs(cfg)
    out = model(x, torch.full((3,), cfg.sigma_min), img)
    assert torch.equal(out.denoised, x)


def test_output_shapes_and_dtype_all_variants():
    for variant in ("cts_nm", "cts_m", "cts_fm"):
        cfg = preset("test32", variant, in_channels=1)[0]
        x, s, img = _inputs(cfg)
        out = CTSModel(cfg)(x, s, img)
        assert out.denoised.shape == x.shape and out.denoised.dtype == torch.float32
        assert (out.aux_logits is None) == (variant == "cts_nm")


def test_group_norm_keeps_low_precision_under_autocast():
    """Under autocast our GroupNorm returns the input's bf16 (no float32 round trip) with float32-accurate
    statistics; outside autocast it is nn.GroupNorm exactly, with the same state_dict."""
    from ctslib.model.layers import GroupNorm
    torch.manual_seed(0)
    norm = GroupNorm(4, 16)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    ref_mod = torch.nn.GroupNorm(4, 16)
    ref_mod.load_state_dict(norm.state_dict())
    x = 3.0 + 2.0 * torch.randn(2, 16, 8, 8)       # an offset mean: bf16 statistics would lose it
    assert torch.equal(norm(x), ref_mod(x))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(norm(x_cl), ref_mod(x), atol=1e-5)
    xb = x.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(xb)                               # (CUDA autocast would run nn.GroupNorm in float32)
    assert out.dtype == torch.bfloat16
    expected = ref_mod(xb.float())
    assert (out.float() - expected).abs().max() < 0.05     # bf16 rounding of O(1) outputs, not of the offset


def test_to_device_is_a_plain_copy_on_cpu():
    from ctslib.device import to_device
    t = torch.arange(6.0)[::2]
    out = to_device(t, torch.device("cpu"))
    assert torch.equal(out, t)


def test_channels_last_follows_group_norm_unless_requested():
    from ctslib.device import use_channels_last
    cpu = torch.device("cpu")
    x = torch.zeros(1, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    keeps = torch.nn.functional.group_norm(x, 2).is_contiguous(memory_format=torch.channels_last)
    assert use_channels_last(cpu) is keeps
    assert use_channels_last(cpu, True) is True and use_channels_last(cpu, False) is False

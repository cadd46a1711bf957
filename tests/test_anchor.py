"""The anchored recipe's pieces: anchor term, BCE + Dice L_S, sigma_max draws, config-level objective defaults."""
import math
from dataclasses import replace

import pytest
import torch

from ctslib.config import RECIPES, ECTConfig, TrainConfig, override, preset, released_mode, with_recipe
from ctslib.device import host_scalars
from ctslib.losses import ConsistencyLoss, anchor_loss, aux_loss, bce_dice_loss, pseudo_huber_distance
from ctslib.masks import mask_coding
from ctslib.model import CTSModel
from ctslib.targets import make_copy


def _batch(cfg, b=4):
    g = torch.Generator().manual_seed(0)
    n = cfg.image_size
    return torch.randn(b, cfg.in_channels, n, n, generator=g), (torch.rand(b, 1, n, n, generator=g) > 0.7).float()


def _bce(p, m):
    return -(m * math.log(p) + (1 - m) * math.log(1 - p))


def test_anchor_l2_and_bce_dice_against_hand_computation():
    f = torch.tensor([[[[0.5, -1.0]]]])          # one sample, two pixels, in mask units
    m = torch.tensor([[[[1.0, 1.0]]]])
    # l2: mean((f - x^m)^2) with x^m = 2m - 1 = (1, 1)
    assert anchor_loss(f, m, "l2").item() == pytest.approx(((0.5 - 1) ** 2 + (-1 - 1) ** 2) / 2)
    # bce_dice on logits 4 f: BCE mean over pixels + 1 - (2 sum pm + 1)/(sum p + sum m + 1)
    p = [1 / (1 + math.exp(-4 * v)) for v in (0.5, -1.0)]
    bce = (_bce(p[0], 1) + _bce(p[1], 1)) / 2
    dice = 1 - (2 * (p[0] + p[1]) + 1) / (p[0] + p[1] + 2 + 1)
    assert anchor_loss(f, m, "bce_dice", 4.0).item() == pytest.approx(bce + dice, rel=1e-5)
    # {0,1} masks: logits of f are scale * (2f - 1), so the threshold stays the sampler's 0.5
    assert torch.allclose(mask_coding("01").logits(torch.tensor([0.5, 1.0]), 4.0), torch.tensor([0.0, 4.0]))


def test_aux_loss_kinds():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    m = torch.tensor([[[[1.0, 0.0]]]])
    p = torch.sigmoid(logits)
    assert aux_loss(logits, m, "mse").item() == pytest.approx(((p - m) ** 2).mean().item())
    assert torch.equal(aux_loss(logits, m, "bce_dice"), bce_dice_loss(logits, m))


def test_sigma_max_share_moves_draws_to_the_top_pair():
    mcfg, tcfg = preset("test32")
    for objective in ("ct", "ict", "ect"):
        cfg = replace(tcfg, objective=objective, steps=1000, anchor=replace(tcfg.anchor, sigma_max_share=1.0))
        pairs = ConsistencyLoss(mcfg, cfg).levels(500, 64, torch.Generator().manual_seed(0))
        assert torch.all(pairs.t_hi == mcfg.sigma_max), objective
        assert torch.all(pairs.t_lo < pairs.t_hi), objective
    half = replace(tcfg, anchor=replace(tcfg.anchor, sigma_max_share=0.5))
    pairs = ConsistencyLoss(mcfg, half).levels(10, 4000, torch.Generator().manual_seed(0))
    share = (pairs.t_hi == mcfg.sigma_max).double().mean().item()
    n = pairs.num_scales - 1     # the uniform draw also lands on the top pair with probability 1/n
    assert share == pytest.approx(0.5 + 0.5 / n, abs=0.03)


def _one_step_error_after_training(anchor: float, steps: int = 25) -> tuple[float, float, bool]:
    mcfg, tcfg = preset("test32", "cts_nm")
    cfg = replace(tcfg, alpha=0.0, anchor=replace(tcfg.anchor, weight=anchor, loss="l2", sigma_max_share=1.0))
    torch.manual_seed(0)
    model = CTSModel(mcfg)
    target = make_copy(model)
    img, _ = _batch(mcfg, 8)
    mask = (img[:, :1] > 0.5).float()        # a mask the image determines, so f(sigma_max) can learn it
    x = mcfg.sigma_max * torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(5))

    def error():
        with torch.no_grad():
            return (model(x, torch.full((8,), mcfg.sigma_max), img).denoised - (2 * mask - 1)).pow(2).mean().item()

    loss_fn, opt = ConsistencyLoss(mcfg, cfg), torch.optim.Adam(model.parameters(), lr=2e-3)
    before, reached = error(), True
    for k in range(steps):   # step 300 of 300: N = 6, so the CT target comes from the teacher at t_{N-1}, not x^m
        loss, logs = loss_fn(model, target, img, mask, 300, torch.Generator().manual_seed(k))
        logs = host_scalars(logs)
        reached &= logs["t_hi_mean"] == pytest.approx(mcfg.sigma_max) and logs["num_scales"] == 6
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, error(), reached


def test_anchor_reaches_f_at_sigma_max():
    """Every online level at sigma_max: with the anchor the one-step output f(sigma_max z, sigma_max) moves to the
    expert mask; without it (the CT target alone, a zero-init teacher) it does not."""
    before, anchored, reached = _one_step_error_after_training(anchor=10.0)
    _, plain, _ = _one_step_error_after_training(anchor=0.0)
    assert reached
    assert anchored < 0.6 * before
    assert anchored < 0.6 * plain


def test_anchor_weight_enters_the_loss():
    mcfg, tcfg = preset("test32")
    model = CTSModel(mcfg)
    target = make_copy(model)
    img, mask = _batch(mcfg)
    cfg = replace(tcfg, anchor=replace(tcfg.anchor, weight=3.0), seg_loss="bce_dice")

    def logs_of(cfg):
        return host_scalars(ConsistencyLoss(mcfg, cfg)(model, target, img, mask, 10, torch.Generator().manual_seed(1))[1])
    logs = logs_of(cfg)
    assert logs["loss_anchor"] > 0
    expected = logs["loss_ct"] + cfg.alpha * logs["loss_s"] + 3.0 * logs["loss_anchor"]
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    off = logs_of(replace(cfg, anchor=replace(cfg.anchor, weight=0.0)))
    assert off["loss_anchor"] == 0.0
    # the logit scale is the config's: the recipe's 8 and the field's default 4 give different anchor terms
    sharp = logs_of(replace(cfg, anchor=replace(cfg.anchor, logit_scale=4.0)))
    assert sharp["loss_ct"] == pytest.approx(logs["loss_ct"]) and sharp["loss_anchor"] != pytest.approx(logs["loss_anchor"])
    assert with_recipe(tcfg, "anchored").anchor.logit_scale == 8.0 and tcfg.anchor.logit_scale == 8.0


def test_objective_defaults_live_in_the_config():
    """iCT's pseudo-Huber metric and 1/(t_hi - t_lo) weighting follow from objective="ict" alone (no CLI needed)."""
    ict = TrainConfig(objective="ict")
    assert (ict.objective_config.metric, ict.objective_config.weighting) == ("pseudo_huber", "ict")
    ct = TrainConfig()
    assert (ct.objective_config.metric, ct.objective_config.weighting) == ("l2", "karras")
    # replace() after construction still follows the new objective
    assert replace(ct, objective="ict").objective_config.metric == "pseudo_huber"
    # an explicit choice wins
    assert replace(ict, ict=replace(ict.ict, metric="l2")).objective_config.metric == "l2"
    mcfg, tcfg = preset("test32")
    loss = ConsistencyLoss(mcfg, replace(tcfg, objective="ict"))
    a, b = torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
    assert torch.allclose(loss.distance(a, b), pseudo_huber_distance(a, b, 0.00054 * 32))
    pairs = loss.levels(0, 16, torch.Generator().manual_seed(0))
    assert torch.allclose(pairs.weight, 1.0 / (pairs.t_hi - pairs.t_lo))


def test_ect_stages_scale_with_the_run_and_start_as_a_denoiser():
    cfg = TrainConfig(objective="ect", steps=1000, ect=ECTConfig(stages=4))
    assert cfg.ect.stage_length(cfg.steps) == 250
    assert [cfg.ect.stage(k, cfg.steps) for k in (0, 249, 250, 999)] == [0, 0, 1, 3]
    warm = replace(cfg, ect=replace(cfg.ect, denoise_share=0.2))
    assert warm.ect.stage(199, 1000) is None and warm.ect.stage(200, 1000) == 0 and warm.ect.stage(999, 1000) == 3
    assert replace(cfg.ect, double_every=25_000).stage(999, 1000) == 0     # ECT's fixed stage length, if asked for
    mcfg, _ = preset("test32")
    pairs = ConsistencyLoss(mcfg, warm).levels(100, 32, torch.Generator().manual_seed(0))
    assert torch.all(pairs.t_lo == 0)                                        # r = 0: plain denoising onto x^m
    pairs = ConsistencyLoss(mcfg, warm).levels(300, 32, torch.Generator().manual_seed(0))
    assert torch.any(pairs.t_lo > 0)


def test_recipes_and_overrides():
    _, tcfg = preset("test32")
    paper = with_recipe(tcfg, "paper")
    assert (paper.objective, paper.anchor.weight, paper.anchor.sigma_max_share, paper.seg_loss) == ("ct", 0.0, 0.0, "mse")
    anchored = with_recipe(tcfg, "anchored")
    assert anchored.anchor.weight > 0 and anchored.seg_loss == "bce_dice"
    assert set(RECIPES) == {"paper", "anchored"}
    with pytest.raises(ValueError, match="unknown recipe"):
        with_recipe(tcfg, "magic")
    cfg = override(tcfg, ["anchor=2.5", "anchor_loss=l2", "s1=3", "clamp_schedule=false"])
    assert (cfg.anchor.weight, cfg.anchor.loss, cfg.ct.s1, cfg.ct.clamp_schedule) == (2.5, "l2", 3, False)
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        override(tcfg, ["no_such_field=1"])
    with pytest.raises(ValueError, match="anchor.loss"):
        override(tcfg, ["anchor_loss=huber"])
    mcfg = preset("test32")[0]
    nested = override(mcfg, ["denoiser.dropout=0.1", "encoder.dropout=0.2", "denoiser.base=8"])
    assert (nested.denoiser.dropout, nested.encoder.dropout, nested.denoiser.base) == (0.1, 0.2, 8)
    assert nested.denoiser.mult == mcfg.denoiser.mult and mcfg.denoiser.dropout == 0.0
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        override(mcfg, ["denoiser.no_such_field=1"])
    # released parity mode never carries the anchor
    _, rel = released_mode(*preset("test32"))
    assert rel.anchor.weight == 0.0 and rel.seg_loss == "mse"
    # the CPU presets' gradient clip is an optimisation constant shared by every recipe and baseline
    # (docs/method.md 9.7); the GPU presets and the released parity mode keep the paper's "no clipping"
    assert paper.grad_clip == anchored.grad_clip == preset("tiny64")[1].grad_clip == 1.0
    assert preset("small128")[1].grad_clip == rel.grad_clip == 0.0


@pytest.mark.parametrize("profile_name", ["quick", "full"])
def test_both_notebook_profiles_train_the_anchored_recipe(profile_name):
    """The notebooks' CPU and GPU profiles alike: a bare run ("cts_m") trains the anchored recipe and
    "cts_m_paper" the paper's, with one budget (what 04_ablation asserts before it trains)."""
    from ctslib import tutorial
    name = tutorial.profile(profile_name).preset
    runs = {v: tutorial.run_configs(name, v, 1)[1] for v in ("cts_nm", "cts_m", "cts_fm", "cts_m_paper")}
    for v in ("cts_nm", "cts_m", "cts_fm"):
        assert {k: getattr(runs[v], k) for k in RECIPES["anchored"]} == RECIPES["anchored"], (name, v)
    assert {k: getattr(runs["cts_m_paper"], k) for k in RECIPES["paper"]} == RECIPES["paper"]
    assert len({(t.steps, t.batch_size, t.lr, t.seed, t.objective) for t in runs.values()}) == 1
    # the paper's own setting keeps the paper's CT
    assert preset("paper256")[1].anchor.weight == 0.0 and preset("paper256")[1].seg_loss == "mse"


def test_cli_recipe_and_set_reach_the_train_config():
    from ctslib.cli import build_parser, configs_from_args
    parse = lambda *a: build_parser().parse_args(["train", "--preset", "test32", *a])  # noqa: E731
    _, paper = configs_from_args(parse("--recipe", "paper"), 1)
    assert paper.anchor.weight == 0.0 and paper.seg_loss == "mse"
    _, cfg = configs_from_args(parse("--recipe", "anchored", "--set", "anchor=2", "--set", "sigma_max_share=0.25"), 1)
    assert (cfg.anchor.weight, cfg.anchor.sigma_max_share, cfg.seg_loss) == (2.0, 0.25, "bce_dice")
    _, ict = configs_from_args(parse("--objective", "ict"), 1)
    assert (ict.objective_config.metric, ict.objective_config.weighting) == ("pseudo_huber", "ict")   # from the config


def test_help_says_each_default_once():
    from ctslib.cli import build_parser
    import argparse
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in action.choices.items():
        for line in sub.format_help().splitlines():
            assert line.count("(default:") <= 1 and line.count("default:") <= 1, (name, line)

"""Target model, EMA and dropout-sharing properties of the training loss (docs/method.md sections 1.3 and 6.1)."""
from dataclasses import replace

import torch
from torch import nn

from ctslib.config import preset
from ctslib.device import host_scalars
from ctslib.losses import ConsistencyLoss, l2_distance, pseudo_huber_distance, segmentation_loss
from ctslib.masks import mask_coding
from ctslib.model import CTSModel
from ctslib.targets import RNGSnapshot, ema_update, make_copy


def _batch(cfg, b=4):
    g = torch.Generator().manual_seed(0)
    n = cfg.image_size
    return torch.randn(b, cfg.in_channels, n, n, generator=g), (torch.rand(b, 1, n, n, generator=g) > 0.7).float()


def test_target_receives_no_gradient_and_is_unchanged_by_backward():
    mcfg, tcfg = preset("test32")
    model = CTSModel(mcfg)
    target = make_copy(model)
    before = [p.clone() for p in target.parameters()]
    img, mask = _batch(mcfg)
    loss, _ = ConsistencyLoss(mcfg, tcfg)(model, target, img, mask, step=50)
    loss.backward()
    assert all(p.grad is None for p in target.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_ema_update_matches_formula_params_and_buffers():
    src = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    src(torch.randn(4, 2, 6, 6))  # populate running stats
    tgt = make_copy(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)))
    old = [t.clone() for t in list(tgt.parameters()) + list(tgt.buffers())]
    ema_update(tgt, src, 0.9)
    for o, t, s in zip(old, list(tgt.parameters()) + list(tgt.buffers()), list(src.parameters()) + list(src.buffers())):
        if t.dtype.is_floating_point:
            torch.testing.assert_close(t, 0.9 * o + 0.1 * s)
        else:
            assert torch.equal(t, s)


class _Probe(nn.Module):
    """Wraps a model; records one draw of the global RNG per call (as dropout would) and the output."""

    def __init__(self, model):
        super().__init__()
        self.model, self.draws, self.outputs = model, [], []

    def forward(self, *args, **kw):
        self.draws.append(torch.rand(1).item())
        out = self.model(*args, **kw)
        self.outputs.append(out.denoised.detach().clone())
        return out


def test_ict_teacher_is_stopgrad_online_with_shared_dropout():
    mcfg, tcfg = preset("test32")
    mcfg = replace(mcfg, denoiser=replace(mcfg.denoiser, dropout=0.3))
    tcfg = replace(tcfg, objective="ict", ict=replace(tcfg.ict, metric="pseudo_huber", weighting="ict"))
    model = CTSModel(mcfg).train()
    with torch.no_grad():  # leave the zero init so that dropout (before the zeroed convs) matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    probe = _Probe(model)
    img, mask = _batch(mcfg)
    state = torch.get_rng_state()
    loss_fn = ConsistencyLoss(mcfg, tcfg)
    loss, _ = loss_fn(probe, probe, img, mask, step=0, generator=torch.Generator().manual_seed(5))
    assert probe.draws[0] == probe.draws[1], "online and teacher passes must see the same RNG state"
    # The teacher output is exactly the online network (no grad) at (x_n, t_n) with the same dropout masks.
    gen = torch.Generator().manual_seed(5)
    pairs = loss_fn.levels(0, 4, gen)
    z = torch.randn((4, 1, 32, 32), generator=gen)
    x_lo = mask_coding().encode(mask) + pairs.t_lo.float().reshape(-1, 1, 1, 1) * z
    torch.set_rng_state(state)
    torch.rand(1)
    with torch.no_grad():
        expected = model(x_lo, pairs.t_lo, img).denoised
    assert torch.equal(probe.outputs[1], expected)
    # without the replay the dropout masks would differ, so the same call now gives another output
    with torch.no_grad():
        assert not torch.equal(model(x_lo, pairs.t_lo, img).denoised, expected)
    loss.backward()
    assert all(p.grad is not None for p in model.g.parameters())


def test_rng_snapshot_replays_dropout_masks():
    drop = nn.Dropout(0.5)
    x = torch.ones(1000)
    snap = RNGSnapshot("cpu")
    a = drop(x)
    with snap.replay():
        b = drop(x)
    c = drop(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_distances_and_segmentation_loss():
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    assert torch.allclose(l2_distance(a, b), torch.ones(2))
    c = 0.5
    assert torch.allclose(pseudo_huber_distance(a, b, c), torch.full((2,), (16 + c * c) ** 0.5 - c))
    assert torch.allclose(segmentation_loss(torch.full((1, 1, 2, 2), 0.25), torch.ones(1, 1, 2, 2)), torch.tensor([0.5625]))
    assert torch.equal(mask_coding().encode(torch.tensor([0.0, 1.0])), torch.tensor([-1.0, 1.0]))
    assert torch.equal(mask_coding("01").encode(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))


def test_ct_loss_alpha_weights_aux_term():
    mcfg, tcfg = preset("test32")
    model = CTSModel(mcfg)
    target = make_copy(model)
    img, mask = _batch(mcfg)

    def logs(cfg):
        return host_scalars(ConsistencyLoss(mcfg, cfg)(model, target, img, mask, 10, torch.Generator().manual_seed(1))[1])
    logs0, logs1 = logs(replace(tcfg, alpha=0.0)), logs(tcfg)
    beta = tcfg.anchor.weight                     # the tutorial presets carry the anchored recipe
    assert abs(logs1["loss"] - (logs1["loss_ct"] + 10 * logs1["loss_s"] + beta * logs1["loss_anchor"])) < 1e-4 * max(logs1["loss"], 1)
    assert abs(logs0["loss"] - logs0["loss_ct"] - beta * logs0["loss_anchor"]) < 1e-5 * max(logs0["loss"], 1)


class _CountingEncoder(nn.Module):
    """Wraps h; counts its forwards and remembers the features each one returned."""

    def __init__(self, h):
        super().__init__()
        self.h, self.calls = h, []

    def forward(self, image):
        out = self.h(image)
        self.calls.append(out)
        return out


def test_ct_teacher_takes_the_online_signals_under_stop_gradient():
    """ct.teacher_signals="online": f^- runs no h of its own and sees the online pass's {e_s} (no gradient to h
    through the teacher); "target" (the paper, the default) keeps theta^-'s own h forward and its own features."""
    mcfg, tcfg = preset("test32-lowres-g")
    img, mask = _batch(mcfg)
    torch.manual_seed(0)
    model = CTSModel(mcfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    target = make_copy(model)
    with torch.no_grad():
        for p in target.h.parameters():
            p.add_(0.1 * torch.randn_like(p))   # theta^- != theta, so the two choices give different targets
    losses = {}
    for choice in ("target", "online"):
        cfg = replace(tcfg, ct=replace(tcfg.ct, teacher_signals=choice))
        model.h, target.h = _CountingEncoder(model.h), _CountingEncoder(target.h)
        loss, _ = ConsistencyLoss(mcfg, cfg)(model, target, img, mask, step=50, generator=torch.Generator().manual_seed(3))
        assert len(model.h.calls) == 1 and len(target.h.calls) == (1 if choice == "target" else 0)
        losses[choice] = loss
        model.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in target.parameters())
        assert any(p.grad.abs().sum() > 0 for p in model.h.parameters())
        model.h, target.h = model.h.h, target.h.h
    assert not torch.equal(losses["target"], losses["online"])
    # with theta^- = theta the shared features are exactly the target's own: the loss is the same to the bit
    same = make_copy(model)
    values = [ConsistencyLoss(mcfg, replace(tcfg, ct=replace(tcfg.ct, teacher_signals=c)))(
        model, same, img, mask, step=50, generator=torch.Generator().manual_seed(3))[0] for c in ("target", "online")]
    assert torch.equal(values[0], values[1])

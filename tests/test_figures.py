"""Figure helpers that are plain functions, and the figures drawn from small synthetic inputs (the notebooks draw the real ones)."""
import ipywidgets as w

from ctslib import figures
from ctslib.figures import wrap_label


def test_panel_titles_are_wrapped_never_cut():
    name = "phantom-mri-train-0047:12"
    label = wrap_label(name)
    assert label.replace("\n", "") == name and all(len(line) <= 22 for line in label.splitlines())
    assert wrap_label("ddti-0001:0") == "ddti-0001:0"
    long = wrap_label("TCGA_CS_4941_19960909_" * 3 + ":7")
    assert len(long.splitlines()) == 2 and "..." in long.replace("\n", "")
    assert long.replace("\n", "").startswith("TCGA_CS") and long.endswith(":7")


def test_headless_widgets_draw_once_unwired_and_live_ones_are_interactive(monkeypatch):
    calls = []
    slider = dict(k=w.IntSlider(value=3, min=0, max=5))
    monkeypatch.setenv(figures.HEADLESS_ENV, "1")
    headless = figures.interactive(lambda k: calls.append(k), **slider)
    assert calls == [3] and not isinstance(headless, w.interactive)       # the callback ran once, at the default
    slider["k"].value = 4
    assert calls == [3]                                                    # and is not wired to the slider
    monkeypatch.setenv(figures.HEADLESS_ENV, "0")
    live = figures.interactive(lambda k: calls.append(k), k=w.IntSlider(value=1, min=0, max=5))
    assert isinstance(live, w.interactive)


def test_segmentation_panel_scores_like_the_metrics_and_colours_the_errors():
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    import matplotlib.pyplot as plt

    from ctslib import metrics
    expert = np.zeros((16, 16), bool)
    expert[4:12, 4:12] = True
    pred = np.zeros((16, 16), bool)
    pred[6:14, 4:12] = True
    fig, ax = plt.subplots()
    d = figures.seg_panel(ax, np.random.default_rng(0).random((16, 16)), expert, pred, "case")
    assert abs(d - metrics.dice(pred, expert)) < 1e-12 and f"Dice {d:.2f}" in ax.get_title()
    fills = [im.get_array() for im in ax.get_images()[1:]]              # false positives, then false negatives
    assert (fills[0][..., 3] > 0).sum() == (pred & ~expert).sum() and (fills[1][..., 3] > 0).sum() == (expert & ~pred).sum()
    plt.close(fig)


def test_loss_terms_enter_with_the_weights_of_the_run(tmp_path):
    import json
    log = tmp_path / "log.jsonl"
    start = {"event": "start", "train": {"alpha": 10.0, "anchor": {"weight": 2.0}}}   # TrainConfig's nested form
    rows = [{"step": s, "loss": 1.0 + 10 * 0.1 + 2 * 0.2, "loss_ct": 1.0, "loss_s": 0.1, "loss_anchor": 0.2} for s in (10, 20)]
    log.write_text("\n".join(json.dumps(r) for r in [start, *rows]) + "\n")
    from ctslib.logs import read_log
    terms = figures.loss_terms(read_log(log))
    assert list(terms) == ["loss_ct", "loss_s", "loss_anchor", "loss"]
    assert terms["loss_s"][2].tolist() == [1.0, 1.0] and terms["loss_anchor"][2].tolist() == [0.4, 0.4]
    shares = figures.term_shares(log)
    assert abs(sum(shares.values()) - 1) < 1e-9 and abs(shares["loss_ct"] - 1 / 2.4) < 1e-9
    figures.plot_training_log(log, save=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    flat = [{"event": "start", "train": {"alpha": 10.0, "anchor": 0.0}}, *rows]     # an old flat log, anchor 0: no beta L_A
    assert "loss_anchor" not in figures.loss_terms(flat)


def test_skip_and_output_curves_cross_where_the_figure_says():
    import torch

    from ctslib import precond
    for sd in (0.25, 0.5, 1.0):
        t = torch.tensor(figures.skip_out_crossing(sd), dtype=torch.float64)
        assert abs(float(precond.c_skip(t, sd) - precond.c_out(t, sd))) < 1e-9
    assert abs(figures.skip_out_crossing(0.5) - 0.6276) < 1e-3 and abs(figures.skip_out_crossing(0.5) - 0.502) > 0.1


def test_speckle_counts_isolated_pixels():
    import numpy as np
    mask = np.zeros((8, 8), bool)
    mask[1, 1] = True                       # an isolated foreground pixel
    mask[4:7, 4:7] = True
    mask[5, 5] = False                      # an isolated background pixel inside a block
    assert figures.speckle(mask) == 2

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

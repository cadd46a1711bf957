"""Figure helpers that are plain functions (the figures themselves run in the notebooks)."""
from ctslib.viz import wrap_label


def test_panel_titles_are_wrapped_never_cut():
    name = "phantom-mri-train-0047:12"
    label = wrap_label(name)
    assert label.replace("\n", "") == name and all(len(line) <= 22 for line in label.splitlines())
    assert wrap_label("ddti-0001:0") == "ddti-0001:0"
    long = wrap_label("TCGA_CS_4941_19960909_" * 3 + ":7")
    assert len(long.splitlines()) == 2 and "..." in long.replace("\n", "")
    assert long.replace("\n", "").startswith("TCGA_CS") and long.endswith(":7")

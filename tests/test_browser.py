"""The notebooks in a real browser: JupyterLab + headless Chromium, as a learner meets them.

Marked `browser`. Without a system Chromium (or without Playwright) the tests skip with one line;
with CTS_REQUIRE_BROWSER=1 (CI) a missing browser is an error. Screenshots of every notebook after
its run go to $CTS_BROWSER_SHOTS (default: runs/browser/ in the repository).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from jupyter_browser import errors_within, find_browser, first_slider_changes_its_figure, jupyterlab, run_notebook

REPO = Path(__file__).resolve().parents[1]
REQUIRED = os.environ.get("CTS_REQUIRE_BROWSER", "").strip().lower() in ("1", "true", "yes", "on")
pytestmark = pytest.mark.browser


def _browser() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "Playwright for Python is not installed (pip install -e '.[dev]')"
    else:
        path = find_browser()
        if path:
            return path
        reason = "no system Chromium (apt-get install chromium, or set CTS_BROWSER)"
    if REQUIRED:
        pytest.fail(f"CTS_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("CTS_BROWSER_SHOTS") or REPO / "runs" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of notebooks/ (JupyterLab saves what it runs; the repository's copies stay clean)."""
    root = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


@pytest.fixture(scope="module")
def page(workspace, tmp_path_factory):
    chromium = _browser()
    from playwright.sync_api import sync_playwright
    out = tmp_path_factory.mktemp("lab-out")
    env = {"CTS_PROFILE": "quick", "CTS_OUT": str(out), "CTS_HEADLESS": "0"}    # a learner's JupyterLab
    with jupyterlab(workspace, env) as lab, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1800})
            tab.lab = lab
            yield tab
        finally:
            browser.close()


def _check(run) -> None:
    assert run.errors == [], f"{run.name}: error output in a cell:\n" + "\n---\n".join(run.errors)
    assert run.widget_problems == [], f"{run.name}: widgets not rendered: {run.widget_problems}"
    assert run.figures >= 1, f"{run.name}: no figure image"


@pytest.mark.parametrize("name", ["00_quickstart.ipynb", "01_consistency_math.ipynb", "03_training.ipynb"])
def test_notebook_runs_in_jupyterlab(page, shots, name):
    run = run_notebook(page, page.lab, name, shots)
    print(f"{name}: {run.code_cells} code cells, {run.widgets} widgets, {run.figures} figures, "
          f"{run.seconds:.0f} s; screenshot {run.screenshot}")
    _check(run)
    assert run.widgets >= 1, f"{name}: no widget rendered"
    if name.startswith("01"):
        changed, detail = first_slider_changes_its_figure(page)
        assert changed, f"{name}: {detail}"


def test_a_broken_widget_callback_fails_the_check(page, shots, workspace):
    """The checks can fail: a slider whose callback raises shows an error output once it moves."""
    nb = new_notebook(cells=[
        new_markdown_cell("# broken widget"),
        new_code_cell("import ipywidgets as w\nimport matplotlib.pyplot as plt\n"
                      "def show(k):\n    plt.plot([0, k]); plt.show()\n    if k > 0: raise RuntimeError('callback failed')"),
        new_code_cell("w.interactive(show, k=w.IntSlider(value=0, min=0, max=5, continuous_update=False))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, workspace / "zz_broken.ipynb")
    run = run_notebook(page, page.lab, "zz_broken.ipynb", shots)
    assert run.errors == [] and run.figures >= 1             # fine until the slider moves
    changed, detail = first_slider_changes_its_figure(page)
    assert changed, detail
    errors = errors_within(page, 30)
    assert any("callback failed" in e for e in errors), errors
    with pytest.raises(AssertionError, match="error output"):
        _check(type(run)(run.name, run.seconds, run.code_cells, errors, [], run.widgets, run.figures))

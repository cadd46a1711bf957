"""The tutorial notebooks as files: structure and conventions (STYLE.md, issue #5).

nbval executes every notebook in the same `python -m pytest` run (pyproject: testpaths includes
notebooks/, addopts --nbval-lax --nbval-current-env; the root conftest.py selects the quick
profile). This file checks what execution cannot: one `parameters` cell that reads the
environment, no stored outputs, thin notebooks, a static figure after every widget.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_quickstart", "01_consistency_math", "02_data_preparation", "03_training", "04_ablation", "05_convergence", "06_sampling"]
PARAMETERS = ("PROFILE", "DATA", "OUT", "DEVICE")
MAX_FUNCTION_LINES = 4            # "no function longer than a few lines is defined in a notebook"


def _code(cell) -> str:
    """Cell source with IPython magics/shell lines blanked, so that ast can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())


def notebook_problems(nb) -> list[str]:
    """Every convention a notebook breaks (empty list = fine)."""
    problems = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        problems.append(f"{len(params)} cells tagged 'parameters' (need exactly one)")
    for i, c in enumerate(code):
        if c.get("outputs"):
            problems.append(f"code cell {i} has stored outputs")
        if c.get("execution_count") is not None:
            problems.append(f"code cell {i} has an execution count")
    if "widgets" in nb.metadata:
        problems.append("stored widget state in the notebook metadata")
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        problems.append("the first cell is not a markdown title")
    elif "what you will learn" not in nb.cells[0].source.lower():
        problems.append("the title cell has no 'What you will learn'")
    if params:
        src = params[0].source
        if code and code[0] is not params[0]:
            problems.append("the parameters cell is not the first code cell")
        for name in PARAMETERS:
            if not re.search(rf"^{name}\s*=", src, re.M):
                problems.append(f"the parameters cell does not define {name}")
        if 'os.environ.get("CTS_PROFILE"' not in src:
            problems.append("PROFILE does not fall back to $CTS_PROFILE")
    sources = [_code(c) for c in code]
    for i, src in enumerate(sources):
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            problems.append(f"code cell {i} does not parse: {exc}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"code cell {i} defines {node.name!r} over {length} lines; move it into ctslib")
        if "_widget(" in src and (i + 1 >= len(sources) or "figures.plot_" not in sources[i + 1]):
            problems.append(f"code cell {i} shows a widget without a static figures.plot_* figure in the next cell")
    if not any(re.search(r"^\s*assert ", s, re.M) for s in sources):
        problems.append("no assert cell")
    if not any("tutorial.setup(" in s for s in sources):
        problems.append("no determinism cell (tutorial.setup)")
    return problems


def test_the_numbered_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS][: len(EXPECTED)] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_follows_the_conventions(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert notebook_problems(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_can_inject_the_parameters(path):
    """papermill parses the parameters cell (a stray quote in a comment silently drops a name)."""
    import papermill as pm
    declared = pm.inspect_notebook(str(path))
    assert set(PARAMETERS) <= set(declared), sorted(declared)


def test_parameters_cell_reads_the_environment(tmp_path):
    """The quick profile is selected by $CTS_PROFILE, which the nbval kernel inherits."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    src = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    probe = src + "\nprint(PROFILE, DATA, OUT, DEVICE)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTS_")}
    default = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    import torch
    expected = "full" if torch.cuda.is_available() else "quick"          # opened by hand: quick without a GPU
    assert default.stdout.split() == [expected, "sample", "../runs/tutorial", "auto"]
    env.update(CTS_PROFILE="quick", CTS_DATA="ddti", CTS_OUT=str(tmp_path))
    quick = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert quick.stdout.split() == ["quick", "ddti", str(tmp_path), "auto"]


def test_pytest_runs_the_notebooks_in_the_quick_profile():
    """One command (`python -m pytest`) runs the unit tests and every notebook, quick profile."""
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'testpaths\s*=\s*\[[^\]]*"notebooks"', text)
    assert "--nbval-lax" in text and "--nbval-current-env" in text
    assert os.environ.get("CTS_PROFILE") == "quick" or "CTS_PROFILE" in (REPO / "conftest.py").read_text()


# ---- the checker itself must be able to fail ---------------------------------------------------
def _good_notebook():
    title = new_markdown_cell("# 99 · Example\n\n**What you will learn**\n- nothing")
    params = new_code_cell(textwrap.dedent('''\
        import os
        PROFILE = os.environ.get("CTS_PROFILE", "full")
        DATA = "phantom"
        OUT = "../runs/tutorial"
        DEVICE = "auto"'''))
    params.metadata["tags"] = ["parameters"]
    body = [new_code_cell("from ctslib import figures, tutorial\ntutorial.setup(seed=0)"),
            new_code_cell("figures.scalings_widget()"), new_code_cell("figures.plot_scalings();"), new_code_cell("assert 1 + 1 == 2")]
    return new_notebook(cells=[title, params, *body])


def test_checker_accepts_a_conforming_notebook():
    assert notebook_problems(_good_notebook()) == []


def test_checker_rejects_stored_outputs():
    nb = _good_notebook()
    nb.cells[-1].outputs = [new_output("stream", name="stdout", text="2\n")]
    nb.cells[-1].execution_count = 3
    problems = notebook_problems(nb)
    assert any("stored outputs" in p for p in problems) and any("execution count" in p for p in problems)


def test_checker_rejects_a_missing_or_duplicated_parameters_cell():
    nb = _good_notebook()
    nb.cells[2].metadata["tags"] = ["parameters"]
    assert any("2 cells tagged" in p for p in notebook_problems(nb))
    nb.cells[1].metadata["tags"] = nb.cells[2].metadata["tags"] = []
    assert any("0 cells tagged" in p for p in notebook_problems(nb))


def test_checker_rejects_long_functions_and_bare_widgets():
    nb = _good_notebook()
    nb.cells.append(new_code_cell("def helper(x):\n    a = x\n    b = a\n    c = b\n    return c"))
    nb.cells[4].source = "print('no static figure here')"
    problems = notebook_problems(nb)
    assert any("'helper'" in p for p in problems)
    assert any("without a static" in p for p in problems)

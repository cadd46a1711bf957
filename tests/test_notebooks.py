"""The tutorial notebooks as files: structure and conventions, and committed outputs that are current.

nbval executes every notebook in the same `python -m pytest` run (pyproject: testpaths includes
notebooks/, addopts --nbval-lax --nbval-current-env; the root conftest.py selects the quick
profile). This file checks what execution cannot: one `parameters` cell that reads the
environment, outputs only with a stamp, thin notebooks, a static figure after every widget, an
exercises section at the end; and that every committed notebook's outputs stamp matches the current
cells, ctslib and data sample (docs/notebook_outputs.md).
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from ctslib import notebook_outputs

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
    stamped = notebook_outputs.is_stamped(nb)
    for i, c in enumerate(code):
        if c.get("outputs") and not stamped:
            problems.append(f"code cell {i} has stored outputs without an outputs stamp")
        if c.get("execution_count") is not None and not stamped:
            problems.append(f"code cell {i} has an execution count without an outputs stamp")
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
    last = nb.cells[-1] if nb.cells else None
    if last is None or last.cell_type != "markdown" or not last.source.startswith("## Exercises"):
        problems.append("the last cell is not a '## Exercises' section")
    else:
        tasks = re.findall(r"^\d+\. ", last.source, re.M)
        if not 3 <= len(tasks) <= 5:
            problems.append(f"the exercises hold {len(tasks)} numbered tasks (need 3-5)")
        if "predict" not in last.source.lower():
            problems.append("no exercise asks the learner to predict the effect of a change before running it")
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
def test_committed_outputs_come_from_the_current_code(path):
    """The outputs a reader sees on the code host were made by these cells, this ctslib and this data sample.

    Fails for a notebook without an outputs stamp too: regenerate with
    `python -m ctslib reproduce --profile quick --update-notebooks` and commit the notebooks.
    """
    assert notebook_outputs.problems(path, REPO) == []


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
    exercises = new_markdown_cell("## Exercises\n\n1. **Predict, then run.** Change a.\n2. Do b.\n3. Do c.")
    return new_notebook(cells=[title, params, *body, exercises])


def test_checker_accepts_a_conforming_notebook():
    assert notebook_problems(_good_notebook()) == []


def test_checker_rejects_outputs_without_a_stamp():
    nb = _good_notebook()
    nb.cells[-2].outputs = [new_output("stream", name="stdout", text="2\n")]
    nb.cells[-2].execution_count = 3
    problems = notebook_problems(nb)
    assert any("stored outputs" in p for p in problems) and any("execution count" in p for p in problems)
    nb.metadata["ctslib"] = {"cells_sha256": "x", "code_sha256": "y"}
    assert notebook_problems(nb) == []          # stamped: allowed here, its freshness is checked separately


def test_checker_wants_exercises_that_ask_for_a_prediction():
    nb = _good_notebook()
    nb.cells[-1].source = "## Exercises\n\n1. Change a.\n2. Do b.\n3. Do c."
    assert any("predict" in p for p in notebook_problems(nb))
    nb.cells[-1].source = "## Exercises\n\n1. **Predict** a.\n2. Do b."
    assert any("numbered tasks" in p for p in notebook_problems(nb))
    nb.cells.pop()
    assert any("Exercises" in p for p in notebook_problems(nb))


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


# ---- the outputs stamp itself must be able to fail ----------------------------------------------
def _fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "ctslib" / "weights").mkdir(parents=True)
    (repo / "data" / "sample").mkdir(parents=True)
    (repo / "ctslib" / "core.py").write_text("X = 1\n")
    (repo / "data" / "sample" / "manifest.json").write_text("{}\n")
    return repo


def _executed_copy(nb, out: Path, repo: Path):
    """What papermill writes: an injected parameters cell, outputs carrying the run's own paths, a widget view."""
    done = nbformat.from_dict(json.loads(json.dumps(nb)))
    injected = new_code_cell(f'OUT = "{out}"')
    injected.metadata["tags"] = ["injected-parameters"]
    done.cells.insert(2, injected)
    for i, cell in enumerate(c for c in done.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [new_output("stream", name="stdout", text=f"run {out}/03_training, data {repo}/data/sample\n"),
                        new_output("display_data", data={notebook_outputs.WIDGET_VIEW: {"model_id": "m"}, "text/plain": "VBox()"})]
    done.metadata["widgets"] = {"state": {}}
    return done


def test_outputs_stamp_detects_changed_cells_code_and_data(tmp_path):
    repo, out = _fake_repo(tmp_path), tmp_path / "run"
    target, executed = tmp_path / "99_x.ipynb", tmp_path / "executed.ipynb"
    nb = _good_notebook()
    nbformat.write(nb, target)
    nbformat.write(_executed_copy(nb, out, repo), executed)
    notebook_outputs.write_back(executed, target, out, repo)
    written = nbformat.read(target, as_version=4)
    text = target.read_text()
    assert notebook_outputs.problems(target, repo) == [] and notebook_problems(written) == []
    assert str(out) not in text and str(repo) not in text and "../runs/tutorial/03_training" in text   # no machine paths
    assert notebook_outputs.WIDGET_VIEW not in text and "widgets" not in written.metadata
    assert [c.source for c in written.cells] == [c.source for c in nb.cells]                          # cells unchanged

    (repo / "ctslib" / "core.py").write_text("X = 2\n")
    assert any("ctslib" in p for p in notebook_outputs.problems(target, repo))
    (repo / "ctslib" / "core.py").write_text("X = 1\n")
    (repo / "data" / "sample" / "manifest.json").write_text('{"n": 1}\n')
    assert any("data/sample" in p for p in notebook_outputs.problems(target, repo))
    (repo / "data" / "sample" / "manifest.json").write_text("{}\n")
    written.cells[-2].source = "assert 2 + 2 == 4"
    nbformat.write(written, target)
    assert any("cells changed" in p for p in notebook_outputs.problems(target, repo))
    del written.metadata["ctslib"]
    nbformat.write(written, target)
    assert any("no outputs stamp" in p for p in notebook_outputs.problems(target, repo))


def test_write_back_refuses_a_notebook_edited_while_it_ran(tmp_path):
    repo, out = _fake_repo(tmp_path), tmp_path / "run"
    target, executed = tmp_path / "99_x.ipynb", tmp_path / "executed.ipynb"
    nb = _good_notebook()
    nbformat.write(_executed_copy(nb, out, repo), executed)
    nb.cells[-2].source = "assert True"
    nbformat.write(nb, target)
    with pytest.raises(ValueError, match="changed while it ran"):
        notebook_outputs.write_back(executed, target, out, repo)

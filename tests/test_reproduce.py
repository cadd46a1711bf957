"""`python -m ctslib reproduce`: the headless runner, and the helpers the notebooks share (tutorial, records, data.roots).

The end-to-end runs use only notebook 01 (about 15 s) and three tiny synthetic notebooks, one of
which fails on purpose: the runner must stop there, show the error and exit non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ctslib import records, reproduce, tutorial
from ctslib.cli import build_parser
from ctslib.data import roots

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def run_reproduce(*argv, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctslib", "reproduce", *map(str, argv)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _reproduce_parser() -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["reproduce"]


def test_reproduce_is_a_cli_subcommand_with_help_on_every_flag():
    parser = _reproduce_parser()
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert {"profile", "data", "out", "device", "only", "timeout"} <= {a.dest for a in flags}
    for action in flags:
        assert action.help and action.help.strip(), action.option_strings
    args = parser.parse_args([])
    assert (args.profile, args.data, args.kernel) == ("quick", "sample", "python3")


def test_discover_orders_notebooks_and_filters_them():
    names = [p.stem for p in reproduce.discover()]
    assert names[:6] == ["00_quickstart", "01_consistency_math", "02_data_preparation", "03_training", "04_ablation",
                         "05_convergence"]
    assert [p.stem for p in reproduce.discover(only="05,01")] == ["01_consistency_math", "05_convergence"]
    assert [p.stem for p in reproduce.discover(only="03_training")] == ["03_training"]
    assert reproduce.discover(only="99") == []


def test_profiles_and_data_resolution(data_root):
    quick = tutorial.profile("quick")
    assert quick.preset in ("test32", "tiny64") and tutorial.profile("full").eval_limit is None
    with pytest.raises(ValueError, match="unknown profile"):
        tutorial.profile("medium")
    assert roots.resolve_data("phantom") == "phantom"
    from ctslib.data import sample_data_root
    assert roots.resolve_data("sample") == roots.resolve_data("") == f"ddti:{sample_data_root() / 'ddti'}"
    assert roots.data_root("sample") == sample_data_root()
    assert roots.resolve_data("lgg:/x/lgg") == "lgg:/x/lgg"
    assert roots.resolve_data(str(data_root)) == f"ddti:{data_root.resolve() / 'ddti'}"
    assert roots.data_root(str(data_root)) == data_root.resolve()


def test_relative_data_paths_are_made_absolute_for_the_notebooks(tmp_path, monkeypatch):
    (tmp_path / "root" / "ddti").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert roots.absolute_data("root") == str(tmp_path / "root")
    assert roots.absolute_data("lgg:data/lgg?cache=0") == f"lgg:{tmp_path / 'data' / 'lgg'}?cache=0"
    assert roots.absolute_data("brats:/abs/brats") == "brats:/abs/brats"
    assert roots.absolute_data("phantom:64") == "phantom:64"


def test_markdown_tables_and_summary(tmp_path):
    out = tmp_path
    records.record(out, "04_ablation", {"headline": {"dice": 0.5, "nested": {"x": float("nan")}},
                                          "table": [{"model": "CTS-M", "output": "one_step", "dice": 0.5,
                                                     "dice_std": 0.1, "iou": 0.34, "iou_std": 0.1, "n": 4}]},
                     profile="quick", data="phantom")
    records.record(out, "09_not_run_now", {"headline": {"stale": 1.0}})
    (out / "figures").mkdir()
    summary = reproduce.write_summary(out, {"profile": "quick", "data": "phantom", "device": "cpu"},
                                      [{"name": "04_ablation", "status": "ok", "seconds": 1.0}])
    assert summary["status"] == "ok" and set(summary["results"]) == {"04_ablation"}       # no stale results
    assert summary["results"]["04_ablation"]["headline"]["nested"]["x"] is None            # JSON without NaN
    md = (out / "summary.md").read_text()
    assert "illustrative only" in md and "| CTS-M | one_step | 0.5 |" in md
    assert "50.0 ± 10.0" in records.pm_table(summary["results"]["04_ablation"]["table"])
    json.loads((out / "summary.json").read_text())


def test_train_live_trains_in_chunks_and_reuses_an_identical_run(tmp_path):
    from ctslib.config import preset
    from ctslib.data import open_dataset
    prof = replace(tutorial.profile("quick"), chunks=2, val_limit=8)
    model_cfg, train_cfg = preset("test32", "cts_m")
    train_set, val_set = open_dataset("phantom:32", "train", 32), open_dataset("phantom:8", "val", 32)
    run = tutorial.train_live(model_cfg, train_cfg, train_set, val_set, tmp_path / "a", 4, prof, "cpu", "phantom:32",
                               live=False)
    log = [json.loads(line) for line in open(run["log"])]
    assert [r["step"] for r in log if r.get("event") == "val"] == [2, 4]          # one evaluation per chunk
    assert sorted(p.name for p in (tmp_path / "a").glob("snapshot_*.pt")) == ["snapshot_0000002.pt", "snapshot_0000004.pt"]
    assert all(r["train"]["steps"] == 4 for r in log if r.get("event") == "start")  # K = the whole run, not a chunk
    again = tutorial.train_live(model_cfg, train_cfg, train_set, val_set, tmp_path / "b", 4, prof, "cpu", "phantom:32",
                                 live=False, reuse=[tmp_path / "a"])
    assert again["reused"] and again["ckpt"] == run["ckpt"] and not (tmp_path / "b").exists()
    other = tutorial.train_live(model_cfg, train_cfg, train_set, val_set, tmp_path / "c", 2, prof, "cpu", "phantom:32",
                                 live=False, reuse=[tmp_path / "a"])
    assert not other["reused"]                                                       # another budget: trained


def test_reproduce_runs_notebook_01_headlessly(tmp_path, data_root):
    out = tmp_path / "out"
    proc = run_reproduce("--profile", "quick", "--only", "01", "--data", data_root, "--out", out, "--timeout", 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = nbformat.read(out / "notebooks" / "01_consistency_math.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "PROFILE = \"quick\"" in injected[0].source and str(out) in injected[0].source
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["profile"] == "quick"
    assert summary["results"]["01_consistency_math"]["headline"]["boundary_condition_bitwise"] is True
    assert (out / "figures" / "01_scalings.png").stat().st_size > 1000
    assert "01_consistency_math" in (out / "summary.md").read_text()
    assert "notebooks" in proc.stderr                                                 # tqdm progress over notebooks


def _tiny_notebook(path: Path, body: str) -> None:
    params = new_code_cell('PROFILE = "full"\nOUT = "unset"')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"), params, new_code_cell(textwrap.dedent(body))],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)


def test_reproduce_stops_at_the_first_failing_notebook(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    _tiny_notebook(books / "01_ok.ipynb", 'from ctslib import records\nrecords.record(OUT, "01_ok", {"headline": {"profile": PROFILE}})')
    _tiny_notebook(books / "02_fails.ipynb", 'raise RuntimeError("deliberate failure 4711")')
    _tiny_notebook(books / "03_never.ipynb", 'print("must not run")')
    out = tmp_path / "out"
    proc = run_reproduce("--profile", "quick", "--notebooks", books, "--out", out, "--no-cell-progress")
    assert proc.returncode == 1
    assert "02_fails" in proc.stderr and "RuntimeError" in proc.stderr and "deliberate failure 4711" in proc.stderr
    assert (out / "notebooks" / "01_ok.ipynb").is_file() and not (out / "notebooks" / "03_never.ipynb").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert [(r["name"], r["status"]) for r in summary["notebooks"]] == [("01_ok", "ok"), ("02_fails", "failed")]
    assert "deliberate failure 4711" in summary["notebooks"][1]["error"]
    assert summary["results"]["01_ok"]["headline"]["profile"] == "quick"             # the parameter was injected


def test_update_notebooks_writes_stamped_outputs_back(tmp_path):
    """--update-notebooks: the executed notebook's outputs land in the notebook file itself, stamped, with no
    path of this machine in them; the committed-outputs test then accepts it. Other settings are refused."""
    from ctslib import notebook_outputs
    books = tmp_path / "books"
    books.mkdir()
    source = REPO / "notebooks" / "01_consistency_math.ipynb"
    shutil.copy(source, books / source.name)
    out = tmp_path / "out"
    proc = run_reproduce("--profile", "quick", "--only", "01", "--notebooks", books, "--out", out, "--update-notebooks",
                         "--timeout", 300, "--no-cell-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = books / source.name
    assert notebook_outputs.problems(written, REPO) == []
    nb, original = nbformat.read(written, as_version=4), nbformat.read(source, as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in original.cells]           # no injected cell
    assert sum(1 for c in nb.cells if c.cell_type == "code" and c.outputs) >= 10
    text = written.read_text()
    assert str(tmp_path) not in text and str(REPO) not in text
    refused = run_reproduce("--profile", "full", "--notebooks", books, "--out", out, "--update-notebooks")
    assert refused.returncode == 2 and "--update-notebooks" in refused.stderr

"""Headless reproduction of the tutorial: the papermill runner behind ``python -m ctslib reproduce``.

    python -m ctslib reproduce --profile quick --out runs/quick         # the in-repo real sample (DDTI), 2-core CPU
    python -m ctslib reproduce --profile quick --data "$CTS_DATA_ROOT" --out runs/ci   # the full sets' DDTI
    python -m ctslib reproduce --profile quick --data phantom --out runs/phantom       # seeded phantoms, no files
    python -m ctslib reproduce --profile full --data brats:/data/BraTS2021 --out runs/full   # GPU

The runner executes ``notebooks/NN_*.ipynb`` in order with papermill (kernel ``python3``, cwd
``notebooks/``), injecting PROFILE, DATA, OUT, DEVICE (and STEPS when given) into each
notebook's ``parameters`` cell. It writes OUT/notebooks/ (executed copies), OUT/figures/ (the
PNGs the notebooks save), OUT/results/ (one JSON of headline numbers per notebook, ctslib.records)
and OUT/summary.md + OUT/summary.json, and stops at the first failing notebook with its error.
The notebooks' own helpers live in ctslib.tutorial (profiles, live training, run lookup).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from .io_utils import write_json_atomic
from .records import jsonable, markdown_table
from .tutorial import QUICK_NOTE, REPO

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")


def discover(folder: str | Path = NOTEBOOK_DIR, only: str | None = None) -> list[Path]:
    """Numbered notebooks NN_*.ipynb in order; ``only`` = comma-separated numbers or names."""
    folder = Path(folder)
    found = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        found = [p for p in found if any(p.stem == k or p.stem.startswith(k if "_" in k else f"{k}_") for k in keys)]
    return found


def notebook_parameters(path: Path, values: dict) -> dict:
    """The subset of ``values`` that the notebook's parameters cell declares."""
    import papermill as pm
    declared = pm.inspect_notebook(str(path))
    return {k: v for k, v in values.items() if k in declared}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def write_summary(out: Path, meta: dict, runs: list[dict]) -> dict:
    """Gather the results of the notebooks in ``runs`` (OUT/results/*.json) into OUT/summary.json and
    a readable OUT/summary.md."""
    ran = {r["name"] for r in runs}
    results = {p.stem: json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json")) if p.stem in ran}
    figures = sorted(str(p.relative_to(out)) for p in (out / "figures").glob("*.png"))
    status = "failed" if any(r["status"] == "failed" for r in runs) else "ok"
    summary = jsonable({**meta, "status": status, "notebooks": runs, "results": results, "figures": figures})
    write_json_atomic(out / "summary.json", summary)
    lines = [f"# CTS tutorial reproduction ({meta['profile']} profile)", "",
             f"- data: `{meta['data']}`; device: `{meta['device']}`; status: **{status}**", ""]
    if meta["profile"] == "quick":
        lines += [f"> {QUICK_NOTE}", ""]
    lines += [markdown_table([{"notebook": r["name"], "status": r["status"], "seconds": round(r["seconds"], 1)}
                              for r in runs]), ""]
    for name, rec in results.items():
        lines += [f"## {name}", ""]
        headline = rec.get("headline") or {}
        if headline:
            lines += [markdown_table([{"quantity": k, "value": v} for k, v in _flat(headline).items()]), ""]
        if rec.get("table"):
            lines += [markdown_table(rec["table"]), ""]
    if figures:
        lines += ["## Figures", ""] + [f"- [{f}]({f})" for f in figures] + [""]
    (out / "summary.md").write_text("\n".join(lines))
    return summary


def _error_text(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError
    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue} (cell {exc.cell_index}, In [{exc.exec_count}]){exc}"
    return f"{type(exc).__name__}: {exc}"


def run_notebooks(notebooks: list[Path], out: Path, values: dict, *, kernel: str = "python3",
                  cwd: str | Path = NOTEBOOK_DIR, timeout: int = 3600, cell_progress: bool = True,
                  log_output: bool = False, update_notebooks: bool = False) -> list[dict]:
    """Execute `notebooks` in order with papermill into OUT, injecting `values` into each parameters cell.

    Writes OUT/notebooks/ (executed copies), OUT/results/, OUT/summary.md and OUT/summary.json after every
    notebook; stops at the first failing notebook (its run record holds the error). ``update_notebooks`` writes
    each executed notebook's outputs back into its source file, stamped (docs/notebook_outputs.md). Returns the
    run records.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    from .figures import HEADLESS_ENV
    for sub in ("notebooks", "figures", "results"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    os.environ[HEADLESS_ENV] = "1"        # the kernels inherit it: widgets draw once as plain output (figures.interactive)
    meta = {"profile": values.get("PROFILE"), "data": values.get("DATA"), "device": values.get("DEVICE"),
            "out": str(out), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    runs: list[dict] = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        executed = out / "notebooks" / nb.name
        (out / "results" / f"{nb.stem}.json").unlink(missing_ok=True)   # no stale numbers from an earlier run
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(executed), parameters=notebook_parameters(nb, values),
                                kernel_name=kernel, cwd=str(Path(cwd).resolve()), execution_timeout=timeout,
                                progress_bar=cell_progress, log_output=log_output)
        except Exception as exc:  # papermill's cell errors, kernel start failures, timeouts
            runs.append({"name": nb.stem, "status": "failed", "seconds": time.perf_counter() - t0,
                         "executed": str(executed), "error": _error_text(exc)[-4000:]})
            break
        runs.append({"name": nb.stem, "status": "ok", "seconds": time.perf_counter() - t0, "executed": str(executed)})
        if update_notebooks:
            from .notebook_outputs import write_back
            write_back(executed, nb, out, REPO)
        write_summary(out, meta, runs)
    bar.close()
    write_summary(out, meta, runs)
    return runs

"""Headless reproduction of the tutorial: the papermill runner and its CLI (``python -m ctslib reproduce``).

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

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .data.roots import SAMPLE, absolute_data
from .data.spec import spec_usage
from .io_utils import write_json_atomic
from .notebook_outputs import update_refusal, write_back
from .records import jsonable, markdown_table
from .tutorial import PROFILES, QUICK_NOTE, REPO

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


def cmd_reproduce(args) -> int:
    try:
        import papermill as pm
    except ImportError:
        print("reproduce needs papermill: pip install -e '.[notebooks]'", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm
    notebooks = discover(args.notebooks, args.only)
    if not notebooks:
        print(f"no notebooks NN_*.ipynb matching {args.only or '*'} in {args.notebooks}", file=sys.stderr)
        return 2
    refusal = update_refusal(args.profile, args.data) if args.update_notebooks else None
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    out = Path(args.out).expanduser().resolve()
    for sub in ("notebooks", "figures", "results"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    data = absolute_data(args.data)
    from .figures import HEADLESS_ENV
    os.environ[HEADLESS_ENV] = "1"        # the kernels inherit it: widgets draw once as plain output (figures.interactive)
    values = {"PROFILE": args.profile, "DATA": data, "OUT": str(out), "DEVICE": args.device}
    if args.steps is not None:
        values["STEPS"] = args.steps
    meta = {"profile": args.profile, "data": data, "device": args.device, "out": str(out),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    runs: list[dict] = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        executed = out / "notebooks" / nb.name
        (out / "results" / f"{nb.stem}.json").unlink(missing_ok=True)   # no stale numbers from an earlier run
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(executed), parameters=notebook_parameters(nb, values),
                                kernel_name=args.kernel, cwd=str(Path(args.notebooks).resolve()),
                                execution_timeout=args.timeout, progress_bar=args.cell_progress,
                                log_output=args.log_output)
        except Exception as exc:  # papermill's cell errors, kernel start failures, timeouts
            runs.append({"name": nb.stem, "status": "failed", "seconds": time.perf_counter() - t0,
                         "executed": str(executed), "error": _error_text(exc)[-4000:]})
            bar.close()
            write_summary(out, meta, runs)
            print(f"\nnotebook {nb.name} FAILED; executed copy with the error: {executed}\n{_error_text(exc)}",
                  file=sys.stderr)
            print(f"stopped at the first failing notebook; summary: {out / 'summary.md'}", file=sys.stderr)
            return 1
        runs.append({"name": nb.stem, "status": "ok", "seconds": time.perf_counter() - t0, "executed": str(executed)})
        if args.update_notebooks:                       # the committed outputs (docs/notebook_outputs.md)
            write_back(executed, nb, out, REPO)
        write_summary(out, meta, runs)
    bar.close()
    print(f"{len(runs)} notebooks ok; summary: {out / 'summary.md'}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .cli import HELP_FMT
    """Register ``reproduce`` on the CLI (ctslib/cli.py discovers this function)."""
    p = subparsers.add_parser(
        "reproduce", help="execute the tutorial notebooks headlessly and summarise their results",
        description="Execute notebooks/NN_*.ipynb in order with papermill, injecting the parameters; write the "
                    "executed notebooks, figures and summary.md/summary.json to OUT; stop at the first failure.",
        formatter_class=HELP_FMT)
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: minutes on a 2-core CPU (illustrative numbers); full: the presets' real length (GPU)")
    p.add_argument("--data", default=SAMPLE,
                   help=f"dataset spec for training: sample (the in-repo real DDTI sample), {spec_usage()}, or a "
                        "data root folder such as $CTS_DATA_ROOT (trains on its DDTI set)")
    p.add_argument("--out", default="runs/reproduce", help="output folder (notebooks/, figures/, results/, summary.*)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (injected as DEVICE)")
    p.add_argument("--steps", type=int, default=None, help="training steps of every run (03, each 04 variant, 05/06 fallbacks); unset: the profile's choice")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="folder of the numbered notebooks (also the cwd)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    p.add_argument("--timeout", type=int, default=3600, help="per-cell execution timeout in seconds")
    p.add_argument("--cell-progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show papermill's per-cell progress bar")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' own output to the terminal")
    p.add_argument("--update-notebooks", action="store_true",
                   help="write each executed notebook's outputs back into its file under --notebooks, stamped with "
                        "hashes of its cells, ctslib and data/sample (quick profile on the sample only)")
    p.set_defaults(func=cmd_reproduce)
    return p

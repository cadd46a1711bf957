"""Check that notebooks are in the form they are committed in (pre-commit hook `notebook-form`; .ci/run).

    python scripts/check_notebooks.py                    # every notebooks/NN_*.ipynb
    python scripts/check_notebooks.py a.ipynb --fix      # rewrite in the canonical form

Committed form: valid nbformat 4, written exactly as ``nbformat.write`` writes it (one-space indent, sorted
keys, final newline; what JupyterLab saves), so a diff shows content, not formatting; exactly one cell tagged
``parameters`` (papermill's profiles). Outputs are kept: the tutorial commits its notebooks executed, so
nothing here strips them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def canonical(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def problems(path: Path, fix: bool = False) -> list[str]:
    """What keeps `path` from its committed form (empty: it is in it); with `fix`, rewrite the formatting."""
    text = path.read_text(encoding="utf-8")
    try:
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        if nb.nbformat != 4:
            return [f"{path}: nbformat {nb.nbformat}, expected 4"]
        nbformat.validate(nb)
    except Exception as exc:   # nbformat raises several types for malformed files: all are one-line reports
        return [f"{path}: not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"]
    found = []
    tagged = sum("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    if tagged != 1:
        found.append(f"{path}: {tagged} cells tagged 'parameters', expected exactly 1")
    if text != canonical(nb):
        if fix:
            path.write_text(canonical(nb), encoding="utf-8")
        else:
            found.append(f"{path}: not in nbformat's canonical form (run scripts/check_notebooks.py {path} --fix)")
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--fix", action="store_true", help="rewrite notebooks that are only formatted differently")
    args = p.parse_args(argv)
    paths = args.paths or sorted((REPO / "notebooks").glob("*.ipynb"))
    found = [line for path in paths for line in problems(path, args.fix)]
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

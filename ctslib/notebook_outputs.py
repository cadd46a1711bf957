"""The tutorial notebooks are committed with the outputs of the quick profile (docs/notebook_outputs.md).

`python -m ctslib reproduce --profile quick --update-notebooks` executes every notebook and `write_back`
copies the outputs of each executed copy into notebooks/NN_*.ipynb, with a stamp in the notebook's
metadata: the SHA-256 of the notebook's own cells, of the ctslib sources (and shipped weights) and of the
in-repo data sample's manifest. `problems` compares a committed notebook's stamp with the current files
(tests/test_notebooks.py fails on a missing or stale stamp), so the figures a reader sees on the code host
are known to come from the code beside them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TEXT_KEYS = ("text/plain", "text/markdown", "text/html")
DEFAULT_OUT = "../runs/tutorial"          # what a learner's own run prints (the notebooks' default OUT)
UPDATE_PROFILE, UPDATE_DATA = "quick", "sample"


def _digest(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk if isinstance(chunk, bytes) else chunk.encode())
        h.update(b"\0")
    return h.hexdigest()


def cells_hash(nb) -> str:
    """SHA-256 of the notebook's cells as a learner edits them: type and source, in order (outputs,
    execution counts, metadata and papermill's injected cell left out)."""
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return _digest(x for c in cells for x in (c.cell_type, c.source))


def code_files(repo: Path) -> list[Path]:
    """What the outputs depend on besides the notebook: ctslib's Python sources, the shipped weights and
    their registry, and data/sample's manifest."""
    pkg = repo / "ctslib"
    files = [p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts]
    files += [p for p in (pkg / "weights").glob("*") if p.suffix in (".pt", ".json")]
    return sorted(files) + [repo / "data" / "sample" / "manifest.json"]


def code_hash(repo: Path) -> str:
    """SHA-256 of `code_files` (relative paths and bytes)."""
    files = [p for p in code_files(repo) if p.is_file()]
    return _digest(x for p in files for x in (str(p.relative_to(repo)), p.read_bytes()))


def stamp(nb, repo: Path) -> dict:
    """The stamp a regenerated notebook carries in ``metadata["ctslib"]``."""
    return {"profile": UPDATE_PROFILE, "data": UPDATE_DATA, "cells_sha256": cells_hash(nb), "code_sha256": code_hash(repo),
            "regenerate": "python -m ctslib reproduce --profile quick --update-notebooks"}


def _clean_text(text: str, out: Path, repo: Path) -> str:
    return text.replace(str(out), DEFAULT_OUT).replace(str(repo), "..")


def _clean_outputs(outputs: list, out: Path, repo: Path) -> list:
    """Outputs without widget views (their state is not stored) and without this machine's paths."""
    kept = []
    for o in outputs:
        if WIDGET_VIEW in o.get("data", {}):
            continue
        if "text" in o:
            o["text"] = _clean_text(o["text"], out, repo)
        for key in TEXT_KEYS:
            if key in o.get("data", {}):
                o["data"][key] = _clean_text(o["data"][key], out, repo)
        o.get("metadata", {}).pop("papermill", None)
        kept.append(o)
    return kept


def write_back(executed: Path, target: Path, out: Path, repo: Path) -> Path:
    """Copy the outputs of the executed copy into ``target`` (whose cells must be the ones executed),
    stamp it, and write it. Paths of the run folder and of the repository become the defaults a learner sees."""
    done = nbformat.read(executed, as_version=4)
    original = nbformat.read(target, as_version=4)
    ran = [c for c in done.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if [(c.cell_type, c.source) for c in ran] != [(c.cell_type, c.source) for c in original.cells]:
        raise ValueError(f"{target.name} changed while it ran; run the update again")
    for cell, result in zip(original.cells, ran):
        if cell.cell_type == "code":
            cell.outputs = _clean_outputs(result.get("outputs", []), Path(out).resolve(), Path(repo).resolve())
            cell.execution_count = result.get("execution_count")
    original.metadata.pop("widgets", None)
    original.metadata["ctslib"] = stamp(original, Path(repo))
    nbformat.write(original, target)
    return target


def problems(path: Path, repo: Path) -> list[str]:
    """Why the committed notebook's outputs may not come from the current code (empty list = current)."""
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get("ctslib")
    fix = "run: python -m ctslib reproduce --profile quick --update-notebooks"
    if not recorded:
        return [f"{path.name}: no outputs stamp; {fix}"]
    found = []
    if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        found.append(f"{path.name}: stamped but without outputs; {fix}")
    if recorded.get("cells_sha256") != cells_hash(nb):
        found.append(f"{path.name}: its cells changed since the outputs were made; {fix}")
    if recorded.get("code_sha256") != code_hash(Path(repo)):
        found.append(f"{path.name}: ctslib, its weights or data/sample changed since the outputs were made; {fix}")
    return found


def is_stamped(nb) -> bool:
    """Whether a notebook (nbformat node) carries an outputs stamp."""
    return bool(nb.metadata.get("ctslib"))


def update_refusal(profile: str, data: str) -> str | None:
    """Why `--update-notebooks` refuses these settings (None: allowed): committed outputs are the quick
    profile on the in-repo sample, so that anyone can regenerate them on a CPU."""
    if profile != UPDATE_PROFILE or data != UPDATE_DATA:
        return (f"--update-notebooks writes the committed outputs, which are the {UPDATE_PROFILE} profile on "
                f"--data {UPDATE_DATA}; got --profile {profile} --data {data}")
    return None


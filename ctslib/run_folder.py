"""The run folder of `train.fit` (ckpt.pt, log.jsonl, snapshot_*.pt): nothing in it is lost by accident.

- A folder that already holds a run is continued only with ``resume`` and replaced only with ``force``.
- ``resume`` needs a checkpoint to resume from.
- The log is only ever appended to; ``force`` removes the old run's files just before training starts.
- Temporary files of an interrupted checkpoint write are removed at the next start.
"""
from __future__ import annotations

from pathlib import Path

from .io_utils import remove_stale_temps

CHECKPOINT, LOG = "ckpt.pt", "log.jsonl"
SNAPSHOTS = "snapshot_*.pt"


class RunFolderError(ValueError):
    """An output folder that cannot be used as asked (it holds a run, or holds nothing to resume)."""


def run_files(out: Path) -> list[Path]:
    """The files of a run in `out`: checkpoint, log and snapshots that exist."""
    files = [p for p in (out / CHECKPOINT, out / LOG) if p.is_file()]
    return files + sorted(out.glob(SNAPSHOTS)) if out.is_dir() else files


def evaluation_points(run_dir: str | Path) -> dict[int, Path]:
    """{training step: file} of a run's EMA snapshots and of its final checkpoint when that is newer (Fig-3 style)."""
    from .checkpoint import load_checkpoint
    points = {int(p.stem.split("_")[1]): p for p in Path(run_dir).glob(SNAPSHOTS)}
    final = Path(run_dir) / CHECKPOINT
    if final.is_file():
        points.setdefault(int(load_checkpoint(final)["step"]), final)
    return dict(sorted(points.items()))


def describe_run(out: Path) -> str:
    """'ckpt.pt, log.jsonl, 3 snapshots': what a run folder holds."""
    files = run_files(out)
    names = [p.name for p in files if not p.match(SNAPSHOTS)]
    snaps = len(files) - len(names)
    return ", ".join(names + ([f"{snaps} snapshot(s)"] if snaps else []))


def check_run_folder(out: str | Path, resume: bool, force: bool) -> None:
    """Refuse what would lose data or resume from nothing; read-only (nothing is changed here)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is an existing file, not a folder")
    if resume and force:
        raise RunFolderError("--resume continues the run in --out and --force replaces it; give one of them")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise RunFolderError(f"nothing to resume: {out / CHECKPOINT} does not exist (leave out --resume to start "
                                 "a new run)")
        return
    if run_files(out) and not force:
        raise RunFolderError(f"--out {out} already holds a run ({describe_run(out)}); pass --resume to continue it or "
                             "--force to replace it")


def start_run_folder(out: str | Path, resume: bool, force: bool) -> list[Path]:
    """Make `out`, remove stale temporary files and, with `force` (not resuming), the old run's files.

    Call it after `check_run_folder`, when training is about to start; returns what was removed.
    """
    out = Path(out)
    check_run_folder(out, resume, force)
    out.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temps(out)
    if force and not resume:
        for p in run_files(out):
            p.unlink()
            removed.append(p)
    return removed

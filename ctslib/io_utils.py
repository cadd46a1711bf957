"""Safe file writes: every file ctslib writes goes through `atomic_write` (temporary file + rename).

- Readers never see a half-written file; a crash or a full disk leaves the previous file intact.
- ``exclusive=True`` creates the final name only if it does not exist yet (a hard link of the finished
  temporary file), so two runs racing for the same new output cannot both "win".
- Temporary files are named ``.<name>.<random>.tmp[<suffix>]``; `remove_stale_temps` deletes the ones an
  interrupted write (SIGKILL, power loss) left behind.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\..*)?$")


class OutputExistsError(FileExistsError):
    """An output that must be new already exists (written by someone else meanwhile)."""


def _usual_permissions(path: str) -> None:
    """0666 minus the umask, as open() would give (mkstemp leaves 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(f"output {path} already exists (another run wrote it meanwhile); not overwritten, "
                             "pass --force to overwrite it")


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished `tmp` the name `path` only if `path` does not exist (atomic on POSIX)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # no hard links on this file system: claim the name exclusively, then move the content over it
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            raise _exists_error(path) from None
        os.close(fd)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = "", exclusive: bool = False) -> None:
    """Call ``write(tmp)`` for a temporary file beside `path`, then move it into place.

    `suffix` keeps an extension that a writer looks at (``.nii.gz``, ``.npz``). ``exclusive`` refuses to
    replace an existing `path` (`OutputExistsError`). The temporary file is removed on any error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _usual_permissions(tmp)
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, write: Callable, fsync: bool = False, exclusive: bool = False) -> None:
    """`atomic_write` for writers of a binary file object: ``write(f)``; `fsync` flushes to disk first.

    The content is produced in memory and then written with plain file writes, so a full disk is an
    ``OSError(ENOSPC)`` ("No space left on device") whatever the serialiser would have said.
    """
    buffer = io.BytesIO()
    write(buffer)

    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    atomic_write(path, to_file, exclusive=exclusive)


def write_json_atomic(path: str | Path, obj, exclusive: bool = False) -> None:
    """Write JSON so that readers never see a half-written file."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"

    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, dump, exclusive=exclusive)


def unwritable_reason(path: str | Path) -> str | None:
    """Why a new file `path` could not be created (its folder is a file, read-only, ...), or None if it can."""
    path = Path(path)
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable (read-only file system or no permission)"
    return None


def output_problem(path: str | Path, force: bool = False) -> str | None:
    """What keeps `path` from being written as an output file ("is a folder; ...", "already exists; ...",
    "cannot be written: ..."), or None."""
    path = Path(path)
    if path.is_dir():
        return "is a folder; give a file name"
    if path.exists() and not force:
        return "already exists; pass --force to overwrite it"
    reason = unwritable_reason(path)
    return None if reason is None else f"cannot be written: {reason}"


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files of interrupted `atomic_write` calls in `folder`; returns what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and TEMP_NAME.match(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed

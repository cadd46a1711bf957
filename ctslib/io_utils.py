"""Atomic file writes: every file ctslib writes goes through `atomic_write` (temp file + rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = "") -> None:
    """Call ``write(tmp)`` for a temporary file beside `path`, then ``os.replace`` it into place.

    Readers never see a half-written file and a crash leaves the old file intact. `suffix` keeps an
    extension that a writer looks at (``.nii.gz``, ``.npz``). The file gets the usual permissions
    (0666 minus the umask; mkstemp would leave 0600). The temporary file is removed on any error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, write: Callable, fsync: bool = False) -> None:
    """`atomic_write` for writers of an open binary file object: ``write(f)``; `fsync` flushes to disk first."""
    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    atomic_write(path, to_file)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON so that readers never see a half-written file."""
    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
            f.write("\n")
    atomic_write(path, dump)

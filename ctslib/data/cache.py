"""On-disk cache of preprocessed arrays (docs/method.md section 8: "cached per slice").

Keys hash everything that changes the result (source files with size and mtime, image size,
preprocessing options, a format version), so a stale entry is never read. Every write goes to
a temporary file in the same folder and is moved into place with ``os.replace``: readers see
either nothing or a complete file, also with several DataLoader workers writing at once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..io_utils import write_bytes_atomic

CACHE_VERSION = 1


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$CTS_CACHE``, else ``~/.cache/ctslib``."""
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("CTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ctslib"


def fingerprint(path: str | os.PathLike) -> str:
    """Path, size and modification time of a source file (pass absolute paths)."""
    st = os.stat(path)
    return f"{os.fspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def digest(*parts: object) -> str:
    """Short stable hash of the parts (str of each, with the cache format version)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"v{CACHE_VERSION}".encode())
    for part in parts:
        h.update(b"\x00" + str(part).encode())
    return h.hexdigest()


def save_npy(path: Path, array: np.ndarray) -> None:
    """Atomically write ``array`` as .npy (temp file + os.replace)."""
    write_bytes_atomic(Path(path), lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def save_json(path: Path, obj) -> None:
    """Atomically write ``obj`` as JSON."""
    write_bytes_atomic(Path(path), lambda f: f.write(json.dumps(obj).encode()))


def load_npy(path: Path, mmap: bool = False) -> np.ndarray | None:
    """Load a cached array (memory-mapped read-only if ``mmap``), or None when absent/unreadable."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError, EOFError):
        return None


class ItemCache:
    """One preprocessed item per .npy file under ``root/namespace/config_key/``."""

    def __init__(self, root: Path, namespace: str, config_key: str):
        self.dir = Path(root) / namespace / digest(config_key)
        self.config_key = config_key

    def path(self, item_key: str) -> Path:
        return self.dir / f"{digest(item_key)}.npy"

    def get(self, item_key: str) -> np.ndarray | None:
        return load_npy(self.path(item_key))

    def put(self, item_key: str, array: np.ndarray) -> None:
        save_npy(self.path(item_key), array)


def cached_or_made(cache: ItemCache | None, sources: Sequence[str | os.PathLike],
                   make: Callable[[], np.ndarray]) -> np.ndarray:
    """The cached array of an item made from these source files; on a miss (or without a cache) make()
    it, and store it. The key fingerprints every source, so an edited source file is made again."""
    if cache is None:
        return make()
    key = "|".join(fingerprint(f) for f in sources)
    arr = cache.get(key)
    if arr is None:
        arr = make()
        cache.put(key, arr)
    return arr

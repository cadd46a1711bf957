"""Checkpoint files: written atomically (io_utils.write_bytes_atomic, fsynced), read with a clear error."""
from __future__ import annotations

from pathlib import Path

import torch

from .io_utils import write_bytes_atomic


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to `path` atomically (fsynced): a crash mid-write never leaves a truncated checkpoint."""
    write_bytes_atomic(path, lambda f: torch.save(state, f), fsync=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`, with a clear error naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt or foreign file
        raise ValueError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc})") from exc

"""Checkpoint files: written atomically (io_utils.write_bytes_atomic, fsynced), read with a clear error,
and the CTS model rebuilt from one."""
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


def build_model_from_checkpoint(path: str | Path, weights: str = "ema", map_location="cpu"):
    """Rebuild a CTSModel from a checkpoint or snapshot; weights = "ema" (default) or "model" (online).

    `path` may also be a pretrained name (``ctslib.pretrained_names()``), checked against its SHA-256.
    Returns (model in eval mode, info: step, weights, train_cfg, data).
    """
    from .config import model_config_from_dict, train_config_from_dict
    from .model import CTSModel
    from .pretrained import resolve_checkpoint
    path = resolve_checkpoint(path)
    state = load_checkpoint(path, map_location=map_location)
    cfg = model_config_from_dict(state["model_cfg"])
    model = CTSModel(cfg)
    if weights not in state or state[weights] is None:
        raise ValueError(f"{path}: checkpoint has no {weights!r} weights")
    model.load_state_dict(state[weights])
    model.eval()
    info = {"step": state["step"], "weights": weights, "train_cfg": train_config_from_dict(state["train_cfg"]),
            "data": state.get("data", "")}
    return model, info

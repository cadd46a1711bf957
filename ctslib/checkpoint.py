"""Checkpoint files: tensors and plain data only, written atomically, read without ever running code.

A checkpoint is a dict of tensors, numbers, strings, lists, tuples and dicts (configs as
``dataclasses.asdict``). It is read with ``torch.load(weights_only=True)``, whose unpickler refuses
every other Python object, so a file carrying a pickled ``__reduce__`` payload is an error, never
executed. Every problem is a `CheckpointError` naming the file.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from .io_utils import write_bytes_atomic

FORMAT = "ctslib-checkpoint/1"     # written into new files; files without it (older ctslib) load the same way


class CheckpointError(ValueError):
    """A file that is missing, unreadable, not a ctslib checkpoint, or whose config does not fit its weights."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to `path` atomically (fsynced): a crash mid-write never leaves a truncated checkpoint."""
    write_bytes_atomic(path, lambda f: torch.save({"format": FORMAT, **state}, f), fsync=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The dict stored in `path`, loaded with ``weights_only=True`` (no code runs); a clear error otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        with warnings.catch_warnings():          # torch warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"checkpoint {path} holds Python objects other than tensors and plain data; "
                                  "refused, because loading it could run code") from None
        raise CheckpointError(f"checkpoint {path} is not a torch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # truncated zip, not a torch file, wrong map_location, ...
        raise CheckpointError(f"checkpoint {path} is not a torch checkpoint file or is damaged "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a ctslib checkpoint (it holds a {type(state).__name__}, "
                              "not a dict)")
    return state


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, at most 200 characters."""
    text = str(exc).strip().splitlines()
    first = text[0].split(". ")[0] if text else ""
    return first[:200] if first else type(exc).__name__


def checkpoint_weights(path: str | Path, state: dict, weights: str) -> dict[str, torch.Tensor]:
    """The state_dict under ``state[weights]`` ("ema" or "model"), checked to be a dict of tensors."""
    if weights not in ("ema", "model"):
        raise CheckpointError(f"weights must be 'ema' or 'model', got {weights!r}")
    sd = state.get(weights)
    if sd is None:
        held = [k for k in ("ema", "model") if isinstance(state.get(k), dict)]
        raise CheckpointError(f"checkpoint {path} has no {weights!r} weights"
                              + (f" (it has: {', '.join(held)})" if held else "; it is not a ctslib checkpoint"))
    if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise CheckpointError(f"checkpoint {path}: {weights!r} is not a dict of named tensors")
    return sd


def load_weights(path: str | Path, model: torch.nn.Module, state_dict: dict) -> None:
    """model.load_state_dict, with a mismatch reported as one line naming the file."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        missing = [k for k in model.state_dict() if k not in state_dict]
        extra = [k for k in state_dict if k not in model.state_dict()]
        shapes = [k for k, v in model.state_dict().items() if k in state_dict and state_dict[k].shape != v.shape]
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state_dict[shapes[0]].shape)} vs "
                 f"{tuple(model.state_dict()[shapes[0]].shape)})" if shapes else ""]
        detail = "; ".join(p for p in parts if p) or _first_line(exc)
        raise CheckpointError(f"checkpoint {path}: its config does not fit its weights ({detail})") from None


def checkpoint_configs(path: str | Path, state: dict):
    """(ModelConfig, TrainConfig) of a checkpoint, with a bad or missing config as a CheckpointError."""
    from .config import model_config_from_dict, train_config_from_dict
    if not isinstance(state.get("model_cfg"), dict):
        raise CheckpointError(f"checkpoint {path} is not a ctslib checkpoint (no model_cfg; keys: "
                              f"{', '.join(map(str, list(state)[:8])) or 'none'})")
    try:
        model_cfg = model_config_from_dict(state["model_cfg"])
        train_cfg = train_config_from_dict(state.get("train_cfg") or {})
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its config is not valid ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
    return model_cfg, train_cfg


def build_model_from_checkpoint(path: str | Path, weights: str = "ema", map_location="cpu"):
    """Rebuild a CTSModel from a checkpoint or snapshot file; weights = "ema" (default) or "model" (online).

    Returns (model in eval mode, info: step, weights, train_cfg, data). `ctslib.pretrained.load_model` also
    takes a pretrained name.
    """
    from .model import CTSModel
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    model_cfg, train_cfg = checkpoint_configs(path, state)
    if state.get("kind", "cts") != "cts":
        raise CheckpointError(f"checkpoint {path} holds a {state['kind']!r} baseline, not a CTS model "
                              "(ctslib.baselines.load_baseline reads it)")
    try:
        model = CTSModel(model_cfg)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"checkpoint {path}: its model config cannot be built ({_first_line(exc)})") from None
    load_weights(path, model, checkpoint_weights(path, state, weights))
    model.eval()
    step = state.get("step", 0)
    if not isinstance(step, int):
        raise CheckpointError(f"checkpoint {path}: step is {step!r}, not an integer")
    data = state.get("data", "")
    info = {"step": step, "weights": weights, "train_cfg": train_cfg, "data": data if isinstance(data, str) else ""}
    return model, info

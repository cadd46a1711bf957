"""Pretrained checkpoints shipped with the package (``ctslib/weights/``), loaded by name.

    import ctslib
    ctslib.pretrained_names()                       # ['ddti-tiny64', 'lgg-tiny64']
    model, info = ctslib.load_pretrained("lgg-tiny64")
    python -m ctslib predict --ckpt lgg-tiny64 --input scan.png --output mask.png

Each entry of ``weights/registry.json`` names a compact checkpoint (EMA weights in half precision,
no optimiser state), its SHA-256, and how it was made; the Markdown model card beside it
(``weights/<name>.md``) gives the data, licence, recipe and test-split scores. Both are written by
``scripts/build_pretrained.py``, which retrains a checkpoint from scratch with a stated command.
The checksum is verified on every load, so a truncated or altered file is an error, not a silent
fall-back.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY = WEIGHTS_DIR / "registry.json"


class PretrainedError(ValueError):
    """An unknown pretrained name, or a pretrained file that is missing or fails its checksum."""


def _registry() -> dict[str, dict]:
    if not REGISTRY.is_file():
        return {}
    try:
        return json.loads(REGISTRY.read_text())
    except ValueError as exc:
        raise PretrainedError(f"pretrained registry {REGISTRY} is not valid JSON ({exc})") from None


def pretrained_names() -> list[str]:
    """Names that `load_pretrained` and ``--ckpt NAME`` accept."""
    return sorted(_registry())


def pretrained_entry(name: str) -> dict:
    """The registry entry of `name` (file, sha256, preset, data, recipe, steps, scores)."""
    entries = _registry()
    if name not in entries:
        available = ", ".join(sorted(entries)) or "none"
        raise PretrainedError(f"unknown pretrained checkpoint {name!r}; available: {available}")
    return entries[name]


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_path(name: str) -> Path:
    """The file of a pretrained checkpoint, after checking that it exists and matches its SHA-256."""
    entry = pretrained_entry(name)
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise PretrainedError(f"pretrained checkpoint {name!r}: {path} is missing (retrain: {entry['command']})")
    if (found := sha256(path)) != entry["sha256"]:
        raise PretrainedError(f"pretrained checkpoint {name!r}: {path} is corrupt (sha256 {found[:12]}... "
                              f"!= {entry['sha256'][:12]}...); restore it from git or retrain: {entry['command']}")
    return path


def resolve_checkpoint(ckpt: str | Path) -> Path:
    """A checkpoint argument as a file: an existing path as it is, else a pretrained name (checksum verified).

    Anything else is an error that lists the pretrained names, so ``--ckpt lgg-tiny46`` says what exists.
    """
    path = Path(ckpt).expanduser()
    if path.exists():
        return path
    if str(ckpt) in _registry():
        return pretrained_path(str(ckpt))
    available = ", ".join(pretrained_names()) or "none"
    raise PretrainedError(f"checkpoint {ckpt} does not exist and is not a pretrained name (available: {available})")


def load_model(ckpt: str | Path, weights: str = "ema", map_location="cpu"):
    """(CTSModel in eval mode, info) of a checkpoint file or a pretrained name (checksum verified); see
    `checkpoint.build_model_from_checkpoint`."""
    return build_model_from_checkpoint(resolve_checkpoint(ckpt), weights, map_location)


def load_pretrained(name: str, device: str | torch.device = "cpu"):
    """(CTSModel in eval mode, info) of a pretrained checkpoint; info adds the registry entry under "pretrained"."""
    model, info = build_model_from_checkpoint(pretrained_path(name), "ema", map_location="cpu")
    info["pretrained"] = pretrained_entry(name)
    return model.to(device), info


def export_compact(ckpt: str | Path, dest: str | Path, data_note: str) -> dict:
    """Write the EMA weights of a training checkpoint in half precision with its configs (no optimiser,
    online weights or RNG state); returns {"bytes", "sha256"}. `data_note` replaces the training data
    spec, which holds a local path."""
    state = load_checkpoint(ckpt)
    if state.get("ema") is None:
        raise PretrainedError(f"{ckpt}: no EMA weights to export")
    ema = {k: (v.half() if v.is_floating_point() else v) for k, v in state["ema"].items()}
    save_checkpoint(dest, {"ema": ema, "step": state["step"], "model_cfg": state["model_cfg"],
                           "train_cfg": state["train_cfg"], "data": data_note})
    return {"bytes": Path(dest).stat().st_size, "sha256": sha256(dest)}


def write_registry_entry(name: str, entry: dict) -> None:
    """Add or replace one registry entry (atomic write)."""
    from .io_utils import write_json_atomic
    entries = _registry()
    entries[name] = entry
    write_json_atomic(REGISTRY, dict(sorted(entries.items())))


__all__ = ["PretrainedError", "export_compact", "load_model", "load_pretrained", "pretrained_entry", "pretrained_names",
           "pretrained_path", "resolve_checkpoint", "sha256", "write_registry_entry"]

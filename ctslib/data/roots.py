"""Data roots and the tutorial's dataset spec: DATA (``sample``, a data-root folder such as ``$CTS_DATA_ROOT``,
or any dataset spec) as the notebooks and ``python -m ctslib reproduce`` take it."""
from __future__ import annotations

import os
from pathlib import Path

from .spec import PATH_KINDS, ROOT_FOLDERS, default_data_root, sample_data_root


def is_data_root(data: str) -> bool:
    """A folder holding several data sets (like ``$CTS_DATA_ROOT`` or ``data/sample``), not a dataset spec."""
    p = Path(os.path.expanduser(str(data)))
    return ":" not in str(data)[:12] and p.is_dir() and any((p / d).is_dir() for d in ROOT_FOLDERS)


SAMPLE = "sample"   # DATA's default: the repository's own real-data sample (data/sample)


def resolve_data(data: str) -> str:
    """Dataset spec of the training notebooks. ``sample`` (the default) is the in-repo real sample's
    DDTI crops; a data root such as ``$CTS_DATA_ROOT`` selects its DDTI set (1 channel, nodule ~30% of
    a crop); ``phantom`` and any other spec pass through."""
    data = (data or SAMPLE).strip()
    if data == SAMPLE:
        return f"ddti:{sample_data_root() / 'ddti'}"
    if is_data_root(data):
        return f"ddti:{Path(data).expanduser().resolve() / 'ddti'}"
    return data


def absolute_data(data: str) -> str:
    """DATA with a relative path made absolute from the current folder (the runner's notebooks run
    in notebooks/, so ``--data data/sample`` or ``lgg:data/lgg`` would otherwise miss)."""
    if is_data_root(data):
        return str(Path(data).expanduser().resolve())
    head, q, options = str(data).partition("?")
    kind, sep, arg = head.partition(":")
    if sep and kind.strip().lower() in PATH_KINDS and arg and not Path(arg).expanduser().is_absolute():
        return f"{kind}:{Path(arg).expanduser().resolve()}{q}{options}"
    return data


def data_root(data: str = "") -> Path | None:
    """The folder of real data sets: the in-repo sample for ``sample``, DATA if it is a data root,
    else ``$CTS_DATA_ROOT`` (or the sample when that is unset)."""
    if data and data.strip() == SAMPLE:
        return sample_data_root()
    if data and is_data_root(data):
        return Path(data).expanduser().resolve()
    root = default_data_root()
    return root if root.is_dir() else None

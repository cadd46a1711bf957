"""Dataset spec strings shared by the CLI and the notebooks (docs/method.md section 8).

Grammar: ``KIND[:ARG][?key=value&key=value]``.

=================  ==========================================================================
``phantom[:N]``    seeded MRI-like phantom, 4 channels (N items per split)
``phantom-us[:N]`` seeded ultrasound-like phantom with speckle, 1 channel
``brats:PATH``     folders of NIfTI volumes, one per subject (BraTS 2021 or BraTS 2015 names)
``brats-slices:PATH``  the 2-D slice layout of the MedSegDiff/CTS BraTS loaders
``pairs:PATH``     a CSV (image, mask[, split, case ...] columns) or a folder of image/mask pairs
``lgg[:PATH]``     LGG ``slices.csv`` layout (PATH: its folder or the CSV; default: data root)
``ddti[:PATH]``    DDTI ``pairs.csv`` layout (PATH: its folder or the CSV; default: data root)
=================  ==========================================================================

Options after ``?`` are passed to the dataset config, e.g. ``brats:/d?slices=all&norm=minmax``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

PHANTOM_KINDS = ("phantom", "phantom-us")
PATH_KINDS = ("brats", "brats-slices", "pairs", "lgg", "ddti")
KINDS = PHANTOM_KINDS + PATH_KINDS
# Kinds whose path may be left out: they default to this folder under the data root.
DEFAULT_FOLDERS = {"lgg": "lgg", "ddti": "ddti"}


@dataclass(frozen=True)
class Spec:
    """A parsed dataset spec: ``kind``, then a path or an item count, then options."""

    kind: str
    path: str | None = None
    count: int | None = None
    options: dict[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:  # options is a dict; hash its items
        return hash((self.kind, self.path, self.count, tuple(sorted(self.options.items()))))


SAMPLE_MANIFEST = "manifest.json"


def sample_data_root() -> Path:
    """The small real-data sample committed in the repository: ``<repo>/data/sample``."""
    return Path(__file__).resolve().parents[2] / "data" / "sample"


def default_data_root() -> Path:
    """``$CTS_DATA_ROOT`` (the full data sets, e.g. from ``data_download.sh``), else the
    repository's own real-data sample ``<repo>/data/sample`` (see its README)."""
    env = os.environ.get("CTS_DATA_ROOT", "").strip()
    if env:
        return Path(os.path.expanduser(env))
    return sample_data_root()


def is_sample_root(root: str | os.PathLike) -> bool:
    """True for a data root that is the small sample (``data/sample``, or a copy of it: its
    ``manifest.json`` says ``"sample": true``), False for the full sets or anything else."""
    import json

    path = Path(root).expanduser()
    try:
        if path.resolve() == sample_data_root().resolve():
            return True
        return bool(json.loads((path / SAMPLE_MANIFEST).read_text()).get("sample"))
    except (OSError, ValueError, AttributeError):
        return False


def _parse_options(spec: str, text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in filter(None, text.split("&")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise DataError(f"dataset spec {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = value.strip()
    return options


def parse_spec(spec: str) -> Spec:
    """Parse a spec string; raise DataError naming the spec for anything unknown or malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec {spec!r}: empty; use one of {', '.join(KINDS)}")
    text = spec.strip()
    head, _, opt_text = text.partition("?")
    kind, sep, arg = head.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(
            f"dataset spec {spec!r}: unknown kind {kind!r}; use one of "
            "phantom[:N], phantom-us[:N], brats:PATH, brats-slices:PATH, pairs:CSV_OR_DIR, lgg[:PATH], ddti[:PATH]"
        )
    options = _parse_options(spec, opt_text)
    if kind in PHANTOM_KINDS:
        count = None
        if arg:
            try:
                count = int(arg)
            except ValueError:
                raise DataError(f"dataset spec {spec!r}: phantom count {arg!r} is not an integer") from None
            if count <= 0:
                raise DataError(f"dataset spec {spec!r}: phantom count must be > 0")
        return Spec(kind, None, count, options)
    if not arg:
        if kind not in DEFAULT_FOLDERS:
            raise DataError(f"dataset spec {spec!r}: {kind} needs a path, e.g. {kind}:/data/{kind}")
        arg = str(default_data_root() / DEFAULT_FOLDERS[kind])
    return Spec(kind, os.path.expanduser(arg), None, options)

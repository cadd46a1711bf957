"""Dataset spec strings shared by the CLI and the notebooks (docs/method.md section 8).

Grammar: ``KIND[:ARG][?key=value&key=value]``.

======================  ==========================================================================
``phantom[:N]``         seeded MRI-like phantom, 4 channels (N items per split)
``phantom-us[:N]``      seeded ultrasound-like phantom with speckle, 1 channel
``brats:PATH``          folders of NIfTI volumes, one per subject (BraTS 2021 or BraTS 2015 names)
``brats-slices:PATH``   the 2-D slice layout of the MedSegDiff/CTS BraTS loaders
``pairs:CSV_OR_DIR``    a CSV (image, mask[, split, case ...] columns) or a folder of image/mask pairs;
                        rows stay inside the CSV's folder unless ``?root=FOLDER`` names a wider one
``lgg[:PATH]``          LGG ``slices.csv`` layout (PATH: its folder or the CSV; default: data root)
``ddti[:PATH]``         DDTI ``pairs.csv`` layout (PATH: its folder or the CSV; default: data root)
======================  ==========================================================================

Options after ``?`` are passed to the dataset config, e.g. ``brats:/d?slices=all&norm=minmax``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

@dataclass(frozen=True)
class DatasetKind:
    """One dataset kind of the spec grammar. `factory.OPENERS` holds the function that opens it."""

    name: str
    arg: str                          # "N" (phantoms: an optional item count), "PATH" (required) or "[PATH]"
    about: str                        # one line for the help texts
    default_folder: str | None = None  # PATH may be left out: this folder under the data root
    root_folder: str | None = None    # its folder under a data root (what makes a folder a data root)
    per_volume: bool = False          # headline Dice per patient (3-D), else per image (ctslib.evaluate)
    label: str | None = None          # display name of its results (benchmarks/readme_results.py)

    @property
    def usage(self) -> str:
        """``phantom[:N]``, ``brats:PATH``, ``lgg[:PATH]``, ... as the spec grammar writes it."""
        if self.arg == "N":
            return f"{self.name}[:N]"
        return f"{self.name}[:PATH]" if self.arg == "[PATH]" else f"{self.name}:{self.arg}"


# The registry: adding a dataset kind is one entry here and one opener in factory.OPENERS.
DATASETS = {k.name: k for k in (
    DatasetKind("phantom", "N", "seeded MRI-like phantom, 4 channels", label="MRI phantom"),
    DatasetKind("phantom-us", "N", "seeded ultrasound-like phantom with speckle, 1 channel", label="US phantom"),
    DatasetKind("brats", "PATH", "folders of NIfTI volumes, one per subject", root_folder="brats2015", per_volume=True),
    DatasetKind("brats-slices", "PATH", "the 2-D slice layout of the MedSegDiff/CTS BraTS loaders",
                root_folder="brats2020_slices", per_volume=True),
    DatasetKind("pairs", "CSV_OR_DIR", "a CSV of image/mask pairs or a folder of them"),
    DatasetKind("lgg", "[PATH]", "LGG slices.csv layout", default_folder="lgg", root_folder="lgg", per_volume=True,
                label="LGG (brain MRI)"),
    DatasetKind("ddti", "[PATH]", "DDTI pairs.csv layout", default_folder="ddti", root_folder="ddti",
                label="DDTI (thyroid US)"),
)}
KINDS = tuple(DATASETS)
PHANTOM_KINDS = tuple(k for k, d in DATASETS.items() if d.arg == "N")
PATH_KINDS = tuple(k for k in KINDS if k not in PHANTOM_KINDS)
DEFAULT_FOLDERS = {k: d.default_folder for k, d in DATASETS.items() if d.default_folder}
ROOT_FOLDERS = tuple(d.root_folder for d in DATASETS.values() if d.root_folder)


def spec_usage() -> str:
    """The kinds as the grammar writes them: ``phantom[:N], phantom-us[:N], brats:PATH, ...``."""
    return ", ".join(d.usage for d in DATASETS.values())


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
        raise DataError(f"dataset spec {spec!r}: unknown kind {kind!r}; use one of {spec_usage()}")
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

"""The one exception type for bad input data (docs/method.md section 8)."""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data: the message names the file (or spec) and the problem.

    Raised for unreadable or corrupt files, shape mismatches, missing modalities, non-finite
    intensities, non-binary or out-of-range masks, empty datasets or splits and unknown specs.
    """


def data_error(path: str | Path, problem: str) -> DataError:
    """Build a DataError whose message starts with the offending file."""
    return DataError(f"{path}: {problem}")

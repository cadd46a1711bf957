import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("CTS_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real datasets. CI has them; a missing folder is an error, never a skip."""
    if not DATA_ROOT.is_dir():
        raise FileNotFoundError(f"shared data not found at {DATA_ROOT}; set CTS_DATA_ROOT")
    return DATA_ROOT


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield

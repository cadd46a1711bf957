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


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is faster on the 2-core CI machine and avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

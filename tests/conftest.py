"""Test set-up: the real-data root, determinism, one-thread tiny models.

Real data: the full sets when ``CTS_DATA_ROOT`` points to them (CI), else the small real sample
committed in ``data/sample`` (a fresh clone). ``CTS_REQUIRE_FULL_DATA=1`` (CI) makes a missing,
unreadable or sample ``CTS_DATA_ROOT`` an error that stops the session, never a skip or a silent
fall-back. Tests ask the ``full_data`` fixture (or ``FULL_DATA`` via ``is_sample_root``) whether
full-set facts (1,908 LGG slices, 518 DDTI crops, ...) apply; on the sample they check the same
facts computed from its CSVs.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from ctslib.data.spec import ROOT_FOLDERS, is_sample_root, sample_data_root

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = sample_data_root()
REQUIRE_FULL = os.environ.get("CTS_REQUIRE_FULL_DATA", "").strip().lower() in ("1", "true", "yes", "on")


def _unreadable(root: Path) -> str | None:
    """Why ``root`` cannot serve as a data root, or None."""
    if not root.is_dir():
        return "is not a folder" if root.exists() else "does not exist"
    try:
        names = {p.name for p in root.iterdir()}
    except OSError as exc:
        return f"cannot be read ({exc})"
    if not names & set(ROOT_FOLDERS):
        return "holds none of " + ", ".join(f"{d}/" for d in ROOT_FOLDERS)
    return None


def _resolve() -> tuple[Path | None, str | None, str | None]:
    """(data root, error, warning)."""
    env = os.environ.get("CTS_DATA_ROOT", "").strip()
    if env:
        root = Path(env).expanduser()
        problem = _unreadable(root)
        if problem is None and REQUIRE_FULL and is_sample_root(root):
            problem = "is the small in-repo sample, not the full data sets"
        if problem is None:
            return root.resolve(), None, None
        if REQUIRE_FULL:
            return None, f"CTS_REQUIRE_FULL_DATA=1 but CTS_DATA_ROOT={env} {problem}", None
        note = f"CTS_DATA_ROOT={env} {problem}; the tests use the in-repo sample {SAMPLE_ROOT}"
    elif REQUIRE_FULL:
        return None, "CTS_REQUIRE_FULL_DATA=1 but CTS_DATA_ROOT is not set (point it at the full data sets)", None
    else:
        note = None
    problem = _unreadable(SAMPLE_ROOT)
    if problem:
        return None, f"the in-repo data sample {SAMPLE_ROOT} {problem} (a clone without data/sample?)", None
    return SAMPLE_ROOT, None, note


DATA_ROOT, _ERROR, _WARNING = _resolve()
FULL_DATA = DATA_ROOT is not None and not is_sample_root(DATA_ROOT)
if _WARNING:
    # the package (default_data_root) and the CLI subprocesses must read the same folder as the tests
    os.environ["CTS_DATA_ROOT"] = str(SAMPLE_ROOT)


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: reads the real data sets (set automatically; `-m real_data` "
                            "runs them alone, as CI's fresh-clone check does)")
    if _ERROR:
        raise pytest.UsageError(_ERROR)
    if _WARNING:
        config.issue_config_time_warning(UserWarning(_WARNING), stacklevel=2)


def pytest_collection_modifyitems(config, items):
    """Mark the tests that read real files: they use the data_root/full_data fixtures, or their module
    reads the data root itself (a module-level ``DATA = default_data_root()``)."""
    for item in items:
        module = getattr(item, "module", None)
        if {"data_root", "full_data"} & set(getattr(item, "fixturenames", ())) or isinstance(getattr(module, "DATA", None), Path):
            item.add_marker(pytest.mark.real_data)


def pytest_report_header(config):
    return f"ctslib data: {DATA_ROOT} ({'full data sets' if FULL_DATA else 'in-repo sample'})"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data sets: the full ones (CTS_DATA_ROOT) or the in-repo sample, never missing."""
    return DATA_ROOT


@pytest.fixture(scope="session")
def full_data() -> bool:
    """True on the full data sets (CTS_DATA_ROOT), False on the in-repo sample (data/sample)."""
    return FULL_DATA


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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint(spec, seed=0) -> OUT/ckpt.pt``: a test32 CTS run of one training step (batch 4) on a
    phantom spec (in_channels from the spec), trained once per (spec, seed) for the whole session. Treat the
    run folder as read-only (copy it to change it)."""
    from dataclasses import replace

    from ctslib.config import preset
    from ctslib.data import open_dataset
    from ctslib.train import RunOptions, train
    made: dict[tuple[str, int], Path] = {}

    def make(spec: str, seed: int = 0) -> Path:
        if (spec, seed) not in made:
            out = tmp_path_factory.mktemp("tiny_ckpt")
            ds = open_dataset(spec, "train", 32)
            mcfg, tcfg = preset("test32", None, ds.in_channels)
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                train(mcfg, replace(tcfg, steps=1, batch_size=4, seed=seed), ds, None,
                      RunOptions(out=str(out), max_steps=1, eval_every=0, progress=False, device="cpu"), data_spec=spec)
            finally:
                torch.set_num_threads(before)
            made[spec, seed] = out / "ckpt.pt"
        return made[spec, seed]
    return make


@pytest.fixture(scope="session")
def build_script():
    """scripts/build_pretrained.py as a module: its RECIPES, scoring and model cards."""
    spec = importlib.util.spec_from_file_location("build_pretrained", REPO / "scripts" / "build_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module            # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module

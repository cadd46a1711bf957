"""Repository-wide pytest set-up, loaded before the tests and the notebooks are collected.

nbval executes the notebooks as stored and cannot inject papermill parameters, so the notebooks'
parameters cells read environment variables, which the nbval kernels inherit from this process:
the quick profile (2-core CPU), the real data (``$CTS_DATA_ROOT`` when set, else the small real
sample committed in ``data/sample``; phantoms only if neither exists), and
a fresh output folder per test session (removed at the end), so that concurrent or repeated test
runs never share checkpoints, and tests never touch a user's tutorial runs. Values already set
in the environment win (and an output folder given by the user is kept).
"""
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
_env_root = os.environ.get("CTS_DATA_ROOT", "").strip()
_candidates = ([Path(os.path.expanduser(_env_root))] if _env_root else []) + [REPO / "data" / "sample"]
_data_root = next((r for r in _candidates if r.is_dir()), None)

os.environ.setdefault("CTS_PROFILE", "quick")
os.environ.setdefault("CTS_HEADLESS", "1")      # nbval: widgets draw once as plain output (ctslib.figures.interactive)
os.environ.setdefault("CTS_DATA", str(_data_root.resolve()) if _data_root else "phantom")
_OWN_OUT = None if "CTS_OUT" in os.environ else tempfile.mkdtemp(prefix="ctslib-nbval-")
if _OWN_OUT:
    os.environ["CTS_OUT"] = _OWN_OUT


def pytest_sessionfinish(session, exitstatus):
    if _OWN_OUT:
        shutil.rmtree(_OWN_OUT, ignore_errors=True)

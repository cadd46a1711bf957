"""Hostile but ordinary input through the real CLI (a subprocess each): every case must end with its exit code,
one line ``ctslib: error: ...`` (or the runtime line) on stderr without a traceback, and leave every existing
file byte for byte as it was."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PNG = next((REPO / "data" / "sample" / "ddti" / "images").glob("*.png"))
PAYLOAD_MARK = "PAYLOAD_RAN"


def run_cli(*args, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("CTS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "ctslib", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (relative names)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int = 2, says: str = "") -> str:
    """Exit `code`, no traceback, one stderr line starting 'ctslib: error:' that contains `says`."""
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("ctslib: error: "), lines[0]
    assert says.lower() in lines[0].lower(), lines[0]
    return lines[0]


class _Payload:
    """A pickle that runs `touch MARK` when unpickled by a loader that allows arbitrary globals."""

    def __init__(self, mark: Path):
        self.mark = mark

    def __reduce__(self):
        return (os.system, (f"touch {self.mark}",))


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "in.png").write_bytes(SAMPLE_PNG.read_bytes())
    return tmp_path


@pytest.mark.parametrize("command", ["predict", "evaluate", "resume"])
def test_a_malicious_checkpoint_never_runs_its_payload(work, command):
    mark = work / PAYLOAD_MARK
    torch.save({"model_cfg": _Payload(mark), "ema": {}, "model": {}, "step": 1}, work / "evil.pt")
    run_dir = work / "run"
    run_dir.mkdir()
    torch.save({"model_cfg": _Payload(mark), "ema": {}, "model": {}, "step": 1}, run_dir / "ckpt.pt")
    before = tree_hashes(work)
    args = {"predict": ["predict", "--ckpt", "evil.pt", "-i", "in.png", "-o", "out.png"],
            "evaluate": ["evaluate", "--ckpt", "evil.pt", "--data", "phantom-us:4", "--limit", "2"],
            "resume": ["train", "--preset", "test32", "--data", "phantom-us:8", "--steps", "2", "--out", "run",
                       "--resume", "--no-progress"]}[command]
    proc = run_cli(*args, cwd=work)
    assert_clean_failure(proc, 2, "could run code")
    assert not mark.exists(), "the checkpoint's pickled payload ran"
    assert tree_hashes(work) == before

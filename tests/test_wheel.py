"""The built wheel works outside the checkout: weights, registry and cards inside, `predict --ckpt` runs from it.

Builds the wheel from a copy of the working tree (so no stale ``build/`` folder leaks into it), installs it into
a fresh virtual environment without system site-packages (CPU torch from the local wheel cache, the wheel's
other requirements from the registry), and runs ``python -m ctslib predict --ckpt ddti-tiny64`` from a folder
outside the checkout on a sample image copied there.

The environment with the requirements is kept between runs outside the checkout (``$XDG_CACHE_HOME`` or
``~/.cache``, folder ``ctslib-wheel-test/``), keyed by the Python version and the requirement list; the freshly
built wheel is force-reinstalled into it every run and ``pip check`` then confirms that its declared
requirements are met. ``CTS_WHEEL_FRESH_VENV=1`` builds the environment anew.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    import tomllib
except ImportError:                                  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "ddti" / "images"
TORCH = "torch==2.13.0"                              # the CPU build, from local disk (README's install line)
WEIGHT_FILES = ("weights/registry.json", "weights/ddti-tiny64.pt", "weights/ddti-tiny64.md",
                "weights/lgg-tiny64.pt", "weights/lgg-tiny64.md")

pytestmark = pytest.mark.slow


def run(*argv, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def source_copy(dest: Path) -> Path:
    """What the sdist would hold: pyproject, README, LICENSE and the package (no caches, no build folder)."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "ctslib", dest / "ctslib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = source_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w", out, cwd=src)
    (found,) = out.glob("ctslib-*.whl")
    return found


def test_wheel_carries_weights_registry_cards_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in WEIGHT_FILES if f"ctslib/{f}" not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith("licenses/ctslib/weights/NOTICE.md") for n in names)    # the weights' own terms
    assert "ctslib/weights/NOTICE.md" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "data/"))]


def venv_with_requirements(root: Path) -> Path:
    """A virtual environment (no system site-packages) with CPU torch and the package's requirements."""
    requirements = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256("\n".join([sys.version, TORCH, *requirements]).encode()).hexdigest()[:12]
    venv = root / f"venv-{key}"
    python = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    if os.environ.get("CTS_WHEEL_FRESH_VENV") == "1" or not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        run(sys.executable, "-m", "venv", venv, cwd=root)
        run(python, "-m", "pip", "install", "-q", TORCH, cwd=root)
        run(python, "-m", "pip", "install", "-q", *[r for r in requirements if not r.startswith("torch")], cwd=root)
        (venv / ".complete").write_text(key)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    return python


def test_installed_wheel_predicts_outside_the_checkout(wheel, tmp_path):
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ctslib-wheel-test"
    python = venv_with_requirements(cache)
    run(python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", wheel, cwd=tmp_path)
    run(python, "-m", "pip", "check", cwd=tmp_path)                     # the wheel's requirements are all met
    module, prefix = run(python, "-c", "import ctslib, sys; print(ctslib.__file__); print(sys.prefix)",
                         cwd=tmp_path).stdout.split()
    assert REPO not in Path(module).parents and Path(prefix) in Path(module).parents, (module, prefix)
    image = tmp_path / "scan.png"
    shutil.copy2(sorted(SAMPLE.glob("*.png"))[0], image)
    out = tmp_path / "out" / "mask.png"
    run(python, "-m", "ctslib", "predict", "--ckpt", "ddti-tiny64", "--input", image, "--output", out, cwd=tmp_path)
    mask = np.asarray(Image.open(out))
    assert mask.shape[:2] == np.asarray(Image.open(image)).shape[:2]
    assert set(np.unique(mask)) <= {0, 255} and mask.any(), "the mask of a sample nodule is empty or not binary"

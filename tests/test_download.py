"""data_download.sh against a local file:// mirror built from the real data: the full
sets (CTS_DATA_ROOT) or the in-repo sample (data/sample), which holds the crops and slices named below."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctslib.data import open_dataset
from ctslib.data.convert import convert_ddti
from ctslib.data.spec import default_data_root

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "data_download.sh"
DATA = default_data_root()
DDTI_IDS = ["101_1(1)", "101_1(2)", "4_1", "12_1", "27_1", "46_1"]
LGG_PATIENTS = ["TCGA_CS_4941_19960909", "TCGA_CS_4943_20000902"]
LGG_SLICES = [10, 11, 12, 13]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _png_bytes_to(img_path: Path, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.open(img_path).save(buf, format=fmt)
    return buf.getvalue()


def _raw_ddti_zip(out: Path) -> None:
    """The public DDTI crops as GitHub serves them: <repo>-<commit>/cropped/*.png + mask/*.gif."""
    with zipfile.ZipFile(out, "w") as z:
        for cid in DDTI_IDS:
            z.write(DATA / "ddti" / "images" / f"{cid}.png", f"DDTI_preprocessing-c3b5/cropped/{cid}.png")
            z.writestr(f"DDTI_preprocessing-c3b5/mask/{cid}.gif", _png_bytes_to(DATA / "ddti" / "masks" / f"{cid}.png", "GIF"))


def _raw_lgg_tar(out: Path) -> None:
    """The Kaggle lgg-mri-segmentation tree: kaggle_3m/<patient>/<patient>_<n>.tif + _mask.tif."""
    with tarfile.open(out, "w:gz") as t:
        for p in LGG_PATIENTS:
            for s in LGG_SLICES:
                for src, suffix in ((f"{s:03d}_image.png", ""), (f"{s:03d}_mask.png", "_mask")):
                    data = _png_bytes_to(DATA / "lgg" / p / src, "TIFF")
                    info = tarfile.TarInfo(f"lgg-mri-segmentation/kaggle_3m/{p}/{p}_{s}{suffix}.tif")
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))


def _write_sums(mirror: Path) -> None:
    lines = [f"{_sha(f)}  {f.name}\n" for f in sorted(mirror.iterdir()) if f.name != "SHA256SUMS"]
    (mirror / "SHA256SUMS").write_text("".join(lines))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    assert DATA.is_dir(), f"real data missing at {DATA} (set CTS_DATA_ROOT, or restore data/sample)"
    m = tmp_path_factory.mktemp("mirror")
    _raw_ddti_zip(m / "ddti.zip")
    _raw_lgg_tar(m / "lgg.tar.gz")
    _write_sums(m)
    return m


def run_script(*args: str, home: Path, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "SYNAPSE_", "CTS_DATA_BASE"))}
    env.update(HOME=str(home), CTS_PYTHON=str(Path(os.sys.executable)), **env_extra)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def _leftovers(dest: Path) -> list[str]:
    return [str(p.relative_to(dest)) for p in dest.rglob("*") if p.name.endswith((".part", ".tmp")) or ".cts-download" in p.parts]


def test_mirror_download_is_idempotent_and_loads(mirror, tmp_path):
    dest = tmp_path / "data"
    r1 = run_script("--dest", str(dest), "--base-url", mirror.as_uri(), home=tmp_path)
    assert r1.returncode == 0, r1.stderr + r1.stdout
    assert (dest / "ddti" / "pairs.csv").is_file() and (dest / "lgg" / "slices.csv").is_file()
    assert (dest / "ddti" / ".complete").is_file() and _leftovers(dest) == []
    stamp = (dest / "lgg" / ".complete").stat().st_mtime_ns

    r2 = run_script("--dest", str(dest), "--base-url", mirror.as_uri(), home=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert "already in" in r2.stdout and (dest / "lgg" / ".complete").stat().st_mtime_ns == stamp

    rows = list(csv.DictReader(open(dest / "lgg" / "slices.csv")))
    assert len(rows) == len(LGG_PATIENTS) * len(LGG_SLICES)
    assert {r["patient"] for r in rows} == set(LGG_PATIENTS)
    lgg = open_dataset(f"lgg:{dest / 'lgg'}", split="all", image_size=32, cache_dir=str(tmp_path / "cache"))
    assert len(lgg) == 8 and lgg.in_channels == 3
    # the conversion keeps pixels and masks exactly
    want = np.asarray(Image.open(DATA / "lgg" / LGG_PATIENTS[0] / "011_mask.png"))
    got = np.asarray(Image.open(dest / "lgg" / LGG_PATIENTS[0] / "011_mask.png"))
    assert np.array_equal(want, got)
    ddti = open_dataset(f"ddti:{dest / 'ddti'}", split="all", image_size=32, cache_dir=str(tmp_path / "cache"))
    assert len(ddti) == len(DDTI_IDS) and ddti.in_channels == 1
    frames = {r["id"]: r["frame"] for r in csv.DictReader(open(dest / "ddti" / "pairs.csv"))}
    assert frames["101_1(2)"] == "101_1"
    split_of = {r["id"]: r["split"] for r in csv.DictReader(open(dest / "ddti" / "pairs.csv"))}
    assert split_of["101_1(1)"] == split_of["101_1(2)"]          # split by frame
    for _, mask, _ in ddti:
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_checksum_failure_leaves_nothing(mirror, tmp_path):
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    for f in mirror.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    data = bytearray((bad / "lgg.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF                                 # corrupt after SHA256SUMS was written
    (bad / "lgg.tar.gz").write_bytes(bytes(data))
    dest = tmp_path / "data"
    r = run_script("--dest", str(dest), "--base-url", bad.as_uri(), "--datasets", "lgg", home=tmp_path)
    assert r.returncode != 0
    assert "checksum mismatch for lgg.tar.gz" in r.stderr
    assert not (dest / "lgg").exists() and _leftovers(dest) == []
    assert sorted(p.name for p in dest.iterdir()) == []


def test_laid_out_archive_is_used_as_is(tmp_path):
    """A mirror may also hold the final layout (CSV inside): it is verified and moved, not converted."""
    m = tmp_path / "mirror"
    m.mkdir()
    rows = [r for r in csv.DictReader(open(DATA / "lgg" / "slices.csv")) if r["patient"] == LGG_PATIENTS[0]][:5]
    with tarfile.open(m / "lgg.tar.gz", "w:gz") as t:
        for r in rows:
            t.add(DATA / "lgg" / r["image"], f"lgg/{r['image']}")
            t.add(DATA / "lgg" / r["mask"], f"lgg/{r['mask']}")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        info = tarfile.TarInfo("lgg/slices.csv")
        info.size = len(buf.getvalue().encode())
        t.addfile(info, io.BytesIO(buf.getvalue().encode()))
    _write_sums(m)
    dest = tmp_path / "data"
    r = run_script("--dest", str(dest), "--base-url", m.as_uri(), "--datasets", "lgg", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (dest / "lgg" / "slices.csv").read_text().splitlines()[0].startswith("patient,slice")
    assert len(open_dataset(f"lgg:{dest / 'lgg'}", split="all", image_size=16, cache_dir=str(tmp_path / "c"))) == 5


def test_offline_and_missing_files_fail_clearly(tmp_path):
    dest = tmp_path / "data"
    r = run_script("--dest", str(dest), "--base-url", "http://127.0.0.1:9/mirror", "--datasets", "ddti", home=tmp_path)
    assert r.returncode != 0 and "cannot reach" in r.stderr and "no network" in r.stderr
    r = run_script("--dest", str(dest), "--base-url", (tmp_path / "nowhere").as_uri(), "--datasets", "ddti", home=tmp_path)
    assert r.returncode != 0 and "no such file in the mirror" in r.stderr
    assert _leftovers(dest) == [] and list(dest.iterdir()) == []


def test_credentials_are_explained(tmp_path):
    """Without Kaggle or Synapse credentials the script says what to do and exits non-zero."""
    dest = tmp_path / "data"
    r = run_script("--dest", str(dest), "--datasets", "lgg,brats", home=tmp_path, PATH="/usr/bin:/bin")
    assert r.returncode != 0
    assert "KAGGLE_USERNAME" in r.stderr and "Synapse" in r.stderr and "syn25829067" in r.stderr
    assert "FAILED: lgg brats" in r.stderr and list(dest.iterdir()) == []
    assert run_script("--help", home=tmp_path).returncode == 0


def test_ddti_xml_conversion(tmp_path):
    """The raw Kaggle DDTI layout (case XML with polygon marks + JPEGs) is cropped per nodule."""
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.fromarray((np.random.default_rng(0).random((360, 560)) * 255).astype(np.uint8)).save(raw / "7_1.jpg")
    poly = lambda x0, y0: [{"x": x0, "y": y0}, {"x": x0 + 60, "y": y0}, {"x": x0 + 60, "y": y0 + 40}, {"x": x0, "y": y0 + 40}]  # noqa: E731
    svg = json.dumps([{"points": poly(100, 100)}, {"points": poly(350, 200)}])
    (raw / "7.xml").write_text(f"<case><number>7</number><mark><image>1</image><svg>{svg}</svg></mark>"
                               "<mark><image>2</image><svg></svg></mark></case>")
    out = tmp_path / "out"
    assert convert_ddti(raw, out) == 2
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert [r["id"] for r in rows] == ["7_1(1)", "7_1(2)"] and {r["frame"] for r in rows} == {"7_1"}
    m = np.asarray(Image.open(out / "masks" / "7_1(1).png"))
    assert m.shape == (300, 300) and set(np.unique(m)) == {0, 255}
    frac = (m > 0).mean()                       # a 60x40 box inside a (60+60)x(40+60) crop
    assert abs(frac - (61 * 41) / (120 * 100)) < 0.05

"""Hostile but ordinary input through the real CLI (a subprocess each).

Every failing case must end with its exit status, exactly one stderr line ``ctslib: error: ...`` without a
traceback, and leave every file that existed before byte for byte as it was. Cases that need a full disk or a
read-only folder run the CLI inside a user and mount namespace (``unshare -rm``) on a small tmpfs.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PNG = sorted((REPO / "data" / "sample" / "ddti" / "images").glob("*.png"))[0]
PRETRAINED = REPO / "ctslib" / "weights" / "ddti-tiny64.pt"
PAYLOAD_MARK = "PAYLOAD_RAN"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("CTS_DEBUG", None)
TRAIN_ON = ["train", "--preset", "test32", "--val-split", "", "--no-progress", "--ckpt-every", "1", "--log-every", "1",
            "--data"]
TRAIN = [*TRAIN_ON, "phantom-us:8"]


# ----------------------------------------------------------------------------------------- helpers
def run_cli(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctslib", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (relative names)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int = 2, says: str = "") -> str:
    """Exit `code`, no traceback, one stderr line starting 'ctslib: error:' that contains `says`."""
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("ctslib: error: "), lines[0]
    assert says.lower() in lines[0].lower(), lines[0]
    return lines[0]


def header_only_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels (a few hundred bytes: a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_namespaces = pytest.mark.skipif(
    not namespaces_work() and os.environ.get("CTS_REQUIRE_NAMESPACES") != "1",
    reason="needs user+mount namespaces (unshare -rm) for a read-only or full file system; "
           "CTS_REQUIRE_NAMESPACES=1 (CI) turns this skip into a failure")


def run_in_tmpfs(script: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a shell `script` in a private mount namespace; $MNT is a 32 MiB tmpfs mounted for it."""
    mnt = cwd / "mnt"
    mnt.mkdir(exist_ok=True)
    body = f'set -e; MNT={mnt}; mount -t tmpfs -o size=32m tmpfs "$MNT"; {script}'
    return subprocess.run(["unshare", "-rm", "sh", "-c", body], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


class _Payload:
    """A pickle that runs `touch MARK` when a loader that allows arbitrary globals unpickles it."""

    def __init__(self, mark: Path):
        self.mark = mark

    def __reduce__(self):
        return (os.system, (f"touch {self.mark}",))


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A 2-step test32 run on the ultrasound phantom (ckpt.pt, log.jsonl), made once for the module."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    proc = run_cli(*TRAIN, "--steps", "2", "--out", out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def work(tmp_path, trained_run) -> Path:
    """A scratch folder holding a picture, a copy of the trained run and bad checkpoints of every kind."""
    (tmp_path / "in.png").write_bytes(SAMPLE_PNG.read_bytes())
    shutil.copytree(trained_run, tmp_path / "run")
    good = torch.load(PRETRAINED, weights_only=True)
    torch.save({"foo": 1}, tmp_path / "foreign.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "truncated.pt").write_bytes(PRETRAINED.read_bytes()[: PRETRAINED.stat().st_size // 2])
    torch.save({**good, "model_cfg": {**good["model_cfg"], "bogus_field": 1}}, tmp_path / "badcfg.pt")
    wider = {**good["model_cfg"], "denoiser": {**good["model_cfg"]["denoiser"], "base": 48}}
    torch.save({**good, "model_cfg": wider}, tmp_path / "misfit.pt")
    torch.save({k: v for k, v in good.items() if k != "model_cfg"}, tmp_path / "nocfg.pt")
    (tmp_path / "folder.pt").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "exists.png").write_bytes(b"precious\n")
    (tmp_path / "exists.json").write_text("{}\n")
    (tmp_path / "tiny.png").write_bytes(b"")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(np.zeros((12, 40), np.uint8)).save(tmp_path / "narrow.png")
    header_only_png(tmp_path / "bomb.png", 8000, 8000)
    header_only_png(tmp_path / "megabomb.png", 30000, 30000)
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 2000))
    header.set_data_dtype(np.float32)
    with open(tmp_path / "huge.nii", "wb") as f:                     # a header that claims 128 GB of voxels
        header.write_to(f)
        f.write(b"\0" * 1024)
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 4, 2), np.float32), np.eye(4)), tmp_path / "four_d.nii.gz")
    nan = np.ones((32, 32, 4), np.float32)
    nan[3, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), tmp_path / "nan.nii.gz")
    (tmp_path / "broken.png").write_bytes(SAMPLE_PNG.read_bytes()[:200])
    return tmp_path


def _pairs(folder: Path, image: str, mask: str) -> Path:
    folder.mkdir()
    (folder / "pairs.csv").write_text(f"image,mask,split\n{image},{mask},train\n{image},{mask},val\n")
    return folder / "pairs.csv"


# ------------------------------------------------------------------ bad input: exit 2, nothing changed
PREDICT = ["predict", "-i", "in.png", "-o", "out.png"]
CASES = {
    # checkpoints that are not ctslib checkpoints, or do not fit their own config
    "ckpt foreign dict": ([*PREDICT, "--ckpt", "foreign.pt"], "not a ctslib checkpoint"),
    "ckpt list": ([*PREDICT, "--ckpt", "list.pt"], "not a ctslib checkpoint"),
    "ckpt garbage": ([*PREDICT, "--ckpt", "garbage.pt"], "garbage.pt"),
    "ckpt empty file": ([*PREDICT, "--ckpt", "empty.pt"], "empty.pt"),
    "ckpt truncated": ([*PREDICT, "--ckpt", "truncated.pt"], "truncated.pt"),
    "ckpt unknown config field": ([*PREDICT, "--ckpt", "badcfg.pt"], "config is not valid"),
    "ckpt config misfits weights": ([*PREDICT, "--ckpt", "misfit.pt"], "does not fit its weights"),
    "ckpt without config": ([*PREDICT, "--ckpt", "nocfg.pt"], "no model_cfg"),
    "ckpt is a folder": ([*PREDICT, "--ckpt", "folder.pt"], "not a file"),
    "ckpt unknown name": ([*PREDICT, "--ckpt", "ddti-tiny46"], "not a pretrained name"),
    "ckpt has no online weights": ([*PREDICT, "--ckpt", "ddti-tiny64", "--weights", "model"], "no 'model' weights"),
    "evaluate foreign ckpt": (["evaluate", "--ckpt", "foreign.pt", "--data", "phantom-us:4"], "not a ctslib"),
    # numbers and names checked when the command line is parsed
    "train steps 0": ([*TRAIN, "--steps", "0", "--out", "new"], "--steps"),
    "train steps -5": ([*TRAIN, "--steps", "-5", "--out", "new"], "--steps"),
    "train batch size 0": ([*TRAIN, "--batch-size", "0", "--out", "new"], "--batch-size"),
    "train batch size -3": ([*TRAIN, "--batch-size", "-3", "--out", "new"], "--batch-size"),
    "train ckpt-every 0": ([*TRAIN, "--ckpt-every", "0", "--out", "new"], "--ckpt-every"),
    "train log-every 0": ([*TRAIN, "--log-every", "0", "--out", "new"], "--log-every"),
    "train val-limit 0": ([*TRAIN, "--val-limit", "0", "--out", "new"], "--val-limit"),
    "train lr nan": ([*TRAIN, "--lr", "nan", "--out", "new"], "--lr"),
    "train seed -1": ([*TRAIN, "--seed", "-1", "--out", "new"], "--seed"),
    "train set lr=inf": ([*TRAIN, "--set", "lr=inf", "--out", "new"], "lr must lie in (0, inf)"),
    "train set ct.s1=0": ([*TRAIN, "--set", "ct.s1=0", "--out", "new"], "ct.s1 must lie"),
    "train set ema_rate=2": ([*TRAIN, "--set", "ema_rate=2", "--out", "new"], "ema_rate must lie in [0, 1)"),
    "train set alpha=-1": ([*TRAIN, "--set", "alpha=-1", "--out", "new"], "alpha must lie"),
    "train set ect.q=0.5": ([*TRAIN, "--set", "ect.q=0.5", "--out", "new"], "ect.q"),
    "train set batch_size=0": ([*TRAIN, "--set", "batch_size=0", "--out", "new"], "batch_size must lie in [1, inf)"),
    "train set lr=abc": ([*TRAIN, "--set", "lr=abc", "--out", "new"], "lr"),
    "train set unknown field": ([*TRAIN, "--set", "no_such_field=1", "--out", "new"], "no_such_field"),
    "train unknown preset": ([*TRAIN, "--preset", "huge999", "--out", "new"], "huge999"),
    "train device cuda without GPU": ([*TRAIN, "--device", "cuda", "--out", "new"], "cuda"),
    "train unknown device": ([*TRAIN, "--device", "tpu9", "--out", "new"], "tpu9"),
    "train resume and force": ([*TRAIN, "--resume", "--force", "--out", "run"], "--force"),
    "info in-channels -1": (["info", "--in-channels", "-1"], "--in-channels"),
    "info a billion channels": (["info", "--preset", "paper256", "--in-channels", "1000000000"], "[1, 64]"),
    "train 1000 workers": ([*TRAIN, "--num-workers", "1000", "--out", "new"], "--num-workers"),
    "evaluate multistep without levels": (["evaluate", "--ckpt", "ddti-tiny64", "--levels", ""], "needs at least one level"),
    "evaluate members 0": (["evaluate", "--ckpt", "ddti-tiny64", "--members", "0"], "--members"),
    "evaluate outputs bogus": (["evaluate", "--ckpt", "ddti-tiny64", "--outputs", "bogus"], "bogus"),
    "evaluate levels not numbers": (["evaluate", "--ckpt", "ddti-tiny64", "--levels", "0.05,abc"], "--levels"),
    "evaluate level above sigma_max": (["evaluate", "--ckpt", "ddti-tiny64", "--levels", "100"], "--levels"),
    "predict members 0": ([*PREDICT, "--ckpt", "ddti-tiny64", "--members", "0"], "--members"),
    "predict levels not numbers": ([*PREDICT, "--ckpt", "ddti-tiny64", "--levels", "x"], "--levels"),
    "predict without input": (["predict", "--ckpt", "ddti-tiny64", "-o", "out.png"], "input"),
    "unknown subcommand": (["segment-everything"], "invalid choice"),
    # outputs checked before any work
    "train out is a file": ([*TRAIN, "--steps", "1", "--out", "a_file"], "a_file"),
    "train out under a file": ([*TRAIN, "--steps", "1", "--out", "a_file/run"], "a_file"),
    "reproduce out is a file": (["reproduce", "--out", "a_file", "--only", "00"], "a_file"),
    "evaluate json is a folder": (["evaluate", "--ckpt", "ddti-tiny64", "--json", "a_folder"], "a_folder"),
    "evaluate json exists": (["evaluate", "--ckpt", "ddti-tiny64", "--json", "exists.json"], "already exists"),
    "predict output exists": ([*PREDICT[:3], "-o", "exists.png", "--ckpt", "ddti-tiny64"], "already exists"),
    "predict output is its input": (["predict", "-i", "in.png", "-o", "in.png", "--ckpt", "ddti-tiny64", "--force"],
                                    "input"),
    "predict output wrong type": ([*PREDICT[:3], "-o", "out.jpg", "--ckpt", "ddti-tiny64"], ".png"),
    "predict uncertainty for a picture": ([*PREDICT, "--ckpt", "ddti-tiny64", "--uncertainty", "u.nii.gz"],
                                          "NIfTI"),
    # run folders: nothing replaced or resumed by accident
    "train into an existing run": ([*TRAIN, "--steps", "3", "--out", "run"], "--resume"),
    "train resume with another network": ([*TRAIN, "--steps", "3", "--out", "run", "--resume", "--preset", "tiny64"],
                                           "cannot resume"),
    "train resume from nothing": ([*TRAIN, "--steps", "3", "--out", "a_folder", "--resume"], "nothing to resume"),
    # input files: bounded, inside their dataset, big enough
    "picture over the pixel limit": (["predict", "-i", "bomb.png", "-o", "o.png", "--ckpt", "ddti-tiny64"],
                                     "more than the limit"),
    "picture past PIL's own limit": (["predict", "-i", "megabomb.png", "-o", "o.png", "--ckpt", "ddti-tiny64",
                                      "--max-pixels", "1000000000"], "megabomb.png"),
    "picture below the limit set": (["predict", "-i", "in.png", "-o", "o.png", "--ckpt", "ddti-tiny64",
                                     "--max-pixels", "100"], "more than the limit"),
    "1x1 picture": (["predict", "-i", "tiny.png", "-o", "o.png", "--ckpt", "ddti-tiny64"], "at least"),
    "12 px high picture": (["predict", "-i", "narrow.png", "-o", "o.png", "--ckpt", "ddti-tiny64"], "at least"),
    "truncated picture": (["predict", "-i", "broken.png", "-o", "o.png", "--ckpt", "ddti-tiny64"], "broken.png"),
    "volume over the voxel limit": (["predict", "-i", "huge.nii", "-o", "o.nii.gz", "--ckpt", "ddti-tiny64"],
                                    "voxels"),
    "4-D volume": (["predict", "-i", "four_d.nii.gz", "-o", "o.nii.gz", "--ckpt", "ddti-tiny64"], "3-D"),
    "volume with NaN": (["predict", "-i", "nan.nii.gz", "-o", "o.nii.gz", "--ckpt", "ddti-tiny64"], "non-finite"),
    "missing input": (["predict", "-i", "nope.png", "-o", "o.png", "--ckpt", "ddti-tiny64"], "does not exist"),
    "missing data folder": ([*TRAIN_ON, "lgg:no/such/folder", "--steps", "1", "--out", "new"], "no/such/folder"),
    "dataset row leaves its folder": ([*TRAIN_ON, "pairs:escape/pairs.csv", "--steps", "1", "--out", "new"],
                                      "outside the dataset folder"),
    "dataset row is absolute": ([*TRAIN_ON, "pairs:absolute/pairs.csv", "--steps", "1", "--out", "new"],
                                "outside the dataset folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(work, case):
    args, says = CASES[case]
    _pairs(work / "escape", "../../../etc/hostname", "../../../etc/hostname")
    _pairs(work / "absolute", str(SAMPLE_PNG), str(SAMPLE_PNG))
    before = tree_hashes(work)
    proc = run_cli(*args, cwd=work)
    assert_clean_failure(proc, 2, says)
    assert tree_hashes(work) == before
    assert not (work / "new").exists() and not (work / "out.png").exists() and not (work / "o.png").exists()


def test_so_many_cases(work):
    assert len(CASES) + 3 >= 40   # the floor, with the three payload cases below


@pytest.mark.parametrize("command", ["predict", "evaluate", "resume"])
def test_a_malicious_checkpoint_never_runs_its_payload(work, command):
    mark = work / PAYLOAD_MARK
    payload = {"model_cfg": _Payload(mark), "ema": {}, "model": {}, "step": 1}
    torch.save(payload, work / "evil.pt")
    (work / "evil_run").mkdir()
    torch.save(payload, work / "evil_run" / "ckpt.pt")
    before = tree_hashes(work)
    args = {"predict": ["predict", "--ckpt", "evil.pt", "-i", "in.png", "-o", "out.png"],
            "evaluate": ["evaluate", "--ckpt", "evil.pt", "--data", "phantom-us:4", "--limit", "2"],
            "resume": [*TRAIN, "--steps", "3", "--out", "evil_run", "--resume"]}[command]
    proc = run_cli(*args, cwd=work)
    assert_clean_failure(proc, 2, "could run code")
    assert not mark.exists(), "the checkpoint's pickled payload ran"
    assert tree_hashes(work) == before


# -------------------------------------------------------------- what is written is kept, and says so
def test_a_grey_picture_for_a_colour_checkpoint_is_announced(work):
    proc = run_cli("predict", "-i", "in.png", "-o", "out.png", "--ckpt", "lgg-tiny64", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "ctslib: note:" in proc.stderr and "repeated to 3 channels" in proc.stderr
    assert Image.open(work / "out.png").size == Image.open(work / "in.png").size


def test_force_replaces_a_run_and_resume_appends_to_its_log(work):
    log = work / "run" / "log.jsonl"
    first = log.read_text()
    proc = run_cli(*TRAIN, "--steps", "3", "--out", "run", "--resume", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().startswith(first), "resuming must append to the log, never truncate it"
    assert torch.load(work / "run" / "ckpt.pt", weights_only=True)["step"] == 3
    proc = run_cli(*TRAIN, "--steps", "1", "--out", "run", "--force", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert torch.load(work / "run" / "ckpt.pt", weights_only=True)["step"] == 1
    assert log.read_text().count('"event": "start"') == 1


def test_stale_temp_files_of_a_killed_write_are_removed_at_the_next_start(work):
    stale = work / "run" / ".ckpt.pt.k9x_2abc.tmp"
    stale.write_bytes(b"half a checkpoint")
    proc = run_cli(*TRAIN, "--steps", "3", "--out", "run", "--resume", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()


def test_a_new_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    """The no-clobber check is atomic: the final name is created exclusively after the content is written."""
    from ctslib.io_utils import OutputExistsError, atomic_write
    target = tmp_path / "mask.png"

    def racing_writer(tmp: str) -> None:
        Path(tmp).write_bytes(b"ours")
        target.write_bytes(b"theirs")        # another run finishes first

    with pytest.raises(OutputExistsError, match="already exists"):
        atomic_write(target, racing_writer, exclusive=True)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]      # no temporary file left


def test_two_racing_predictions_do_not_both_win(work):
    procs = [subprocess.Popen([sys.executable, "-m", "ctslib", "predict", "-i", "in.png", "-o", "race.png",
                               "--ckpt", "ddti-tiny64", "--members", str(m)], cwd=work, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    winner = (work / "race.png").read_bytes()
    assert Image.open(work / "race.png").size == Image.open(work / "in.png").size and winner
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser and "Traceback" not in loser


@needs_namespaces
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_no_space(work):
    script = (f'cp -r {work / "run"} "$MNT/run"; '
              f'dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true; truncate -s -256K "$MNT/filler"; '
              f'sha256sum "$MNT/run/ckpt.pt" > {work / "before.sha"}; set +e; '
              f'{sys.executable} -m ctslib {shlex.join(TRAIN)} --steps 4 --out "$MNT/run" --resume; echo "rc=$?"; '
              f'sha256sum "$MNT/run/ckpt.pt" > {work / "after.sha"}; ls -a "$MNT/run" > {work / "listing"}')
    proc = run_in_tmpfs(script, work)
    assert "rc=1" in proc.stdout, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ctslib: error:") and "no space left" in lines[0].lower(), lines
    assert "Traceback" not in proc.stderr
    assert (work / "before.sha").read_text().split()[0] == (work / "after.sha").read_text().split()[0]
    assert not [n for n in (work / "listing").read_text().split() if n.endswith(".tmp")]


@needs_namespaces
@pytest.mark.parametrize("command", ["train", "predict", "evaluate-json"])
def test_a_read_only_output_is_refused_before_any_work(work, command):
    args = {"train": f'{shlex.join(TRAIN)} --steps 1 --out "$MNT/run"',
            "predict": 'predict -i in.png -o "$MNT/out.png" --ckpt ddti-tiny64',
            "evaluate-json": 'evaluate --ckpt ddti-tiny64 --data phantom-us:4 --json "$MNT/r.json"'}[command]
    script = f'mount -o remount,ro "$MNT"; set +e; {sys.executable} -m ctslib {args}; echo "rc=$?"'
    proc = run_in_tmpfs(script, work)
    assert "rc=2" in proc.stdout, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not writable" in lines[0] and "Traceback" not in proc.stderr, lines


def test_ctrl_c_during_training_exits_130_and_keeps_the_checkpoint(work):
    # A shell's background job (nohup, `cmd &`) starts with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the child the default disposition, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen([sys.executable, "-m", "ctslib", *TRAIN, "--steps", "100000", "--out", "long"],
                            cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = work / "long" / "ckpt.pt"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint within 240 s"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ctslib: error: interrupted") and "is kept" in lines[0], lines
    assert torch.load(ckpt, weights_only=True)["step"] >= 1

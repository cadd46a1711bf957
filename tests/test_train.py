"""The trainer: exact resume, divergence stop, JSONL log, DDP equivalence, atomic checkpoints."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import ctslib.train as T
from ctslib import checkpoint
from ctslib.cli import main as cli_main
from ctslib.config import preset
from ctslib.data import open_dataset
from ctslib.losses import ConsistencyLoss
from ctslib.checkpoint import build_model_from_checkpoint
from ctslib.train import RunOptions, TrainingDiverged, train

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(out: Path, steps: int = 6, max_steps: int | None = None, resume: bool = False, seed: int = 0,
         val: bool = False, **run) -> dict:
    """test32 on phantom MRI slices, batch 8, schedule length K = steps."""
    mcfg, tcfg = preset("test32", None, 4)
    tcfg = replace(tcfg, steps=steps, batch_size=8, seed=seed)
    train_set = open_dataset("phantom:64", "train", 32)
    val_set = open_dataset("phantom:16", "val", 32) if val else None
    opts = dict(out=str(out), max_steps=max_steps, ckpt_every=3, eval_every=0, log_every=1, val_limit=8,
                progress=False, device="cpu", resume=resume)
    opts.update(run)
    return train(mcfg, tcfg, train_set, val_set, RunOptions(**opts), data_spec="phantom:64")


def _load(out: Path) -> dict:
    return torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)


def _tensors(obj, prefix=""):
    """Flatten nested dicts/lists of a checkpoint into (name, tensor-or-value) pairs."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _differences(a: dict, b: dict, keys=("model", "target", "ema", "optimizer", "step")) -> list[str]:
    """Names of entries that are not exactly equal (torch.equal for tensors)."""
    diff = []
    for key in keys:
        ta, tb = dict(_tensors(a[key], key)), dict(_tensors(b[key], key))
        if ta.keys() != tb.keys():
            diff.append(f"{key}: different entries")
            continue
        for name, va in ta.items():
            vb = tb[name]
            same = torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb
            if not same:
                diff.append(name)
    return diff


class _FailAt(ConsistencyLoss):
    """The real loss, except at iteration `at`: NaN (mode "nan") or a crash (mode "crash")."""
    at, mode = 4, "nan"

    def __call__(self, model, teacher, image, mask, step, *args, **kwargs):
        loss, logs = super().__call__(model, teacher, image, mask, step, *args, **kwargs)
        if step == self.at:
            if self.mode == "crash":
                raise KeyboardInterrupt("simulated interruption")
            loss, logs = loss * float("nan"), {**logs, "loss": float("nan")}
        return loss, logs


# ------------------------------------------------------------------------------------------ resume
def test_resume_is_exact(tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run(full, steps=6)
    # interrupted during iteration 5 (after the step-3 checkpoint), then resumed to the end
    monkeypatch.setattr(T, "ConsistencyLoss", type("Crash", (_FailAt,), {"mode": "crash"}))
    with pytest.raises(KeyboardInterrupt):
        _run(cut, steps=6)
    monkeypatch.undo()
    assert _load(cut)["step"] == 3
    other_seed = tmp_path / "other_seed"
    shutil.copytree(cut, other_seed)
    summary = _run(cut, steps=6, max_steps=6, resume=True)
    assert summary["step"] == 6
    a, b = _load(full), _load(cut)
    assert a["step"] == b["step"] == 6
    assert _differences(a, b) == []
    # the comparison is sharp: resuming with another seed (other batches and noise) is detected
    _run(other_seed, steps=6, max_steps=6, resume=True, seed=1)
    diff = _differences(a, _load(other_seed), keys=("model", "target", "ema", "optimizer"))
    assert any(d.startswith("model.") for d in diff) and any(d.startswith("ema.") for d in diff)
    # the resumed run appended to the log instead of starting a new one
    events = [json.loads(line) for line in (cut / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "start"] == [0, 3]


# -------------------------------------------------------------------------------------- divergence
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "ConsistencyLoss", _FailAt)      # NaN in iteration 5 (step index 4)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 4.*ckpt\.pt is kept") as err:
        _run(tmp_path, steps=6)
    assert str(tmp_path / "ckpt.pt") in str(err.value)
    state = checkpoint.load_checkpoint(tmp_path / "ckpt.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for k in ("model", "ema", "target") for v in state[k].values() if v.is_floating_point())
    model, info = build_model_from_checkpoint(tmp_path / "ckpt.pt")
    assert info["step"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_inf_loss_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "ConsistencyLoss", type("Early", (_FailAt,), {"at": 0}))
    with pytest.raises(TrainingDiverged, match=r"at step 0.*\(none yet\)"):
        _run(tmp_path, steps=6)
    assert not (tmp_path / "ckpt.pt").exists()


# --------------------------------------------------------------------------------------------- log
def test_jsonl_log_has_losses_schedule_speed_and_validation(tmp_path):
    _run(tmp_path, steps=4, val=True, eval_every=2)
    tcfg = preset("test32")[1]
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    start = records[0]
    assert start["event"] == "start" and start["world"] == 1 and start["data"] == "phantom:64"
    assert start["model"]["image_size"] == 32 and start["train"]["batch_size"] == 8
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        for key in ("loss", "loss_ct", "loss_s", "num_scales", "mu", "lr", "img_per_s"):
            assert key in r and r[key] is not None, key
        assert r["loss"] == pytest.approx(r["loss_ct"] + tcfg.alpha * r["loss_s"] + tcfg.anchor.weight * r["loss_anchor"], rel=1e-5)
        assert isinstance(r["num_scales"], int) and r["num_scales"] >= 2
        assert 0.0 < r["mu"] < 1.0 and r["lr"] == pytest.approx(tcfg.lr) and r["img_per_s"] > 0
    vals = [r for r in records if r.get("event") == "val"]
    assert [r["step"] for r in vals] == [2, 4]
    for r in vals:
        assert 0.0 <= r["val_dice_consistency"] <= 1.0 and 0.0 <= r["val_dice_aux"] <= 1.0


# ----------------------------------------------------------------------------------------- atomic
def test_failed_checkpoint_write_keeps_previous_and_leaves_no_temp(tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def flaky_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                       # the step-2 checkpoint: half written, then the disk is full
            f.write(b"\x00" * 100)
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError, match="No space left"):
        _run(tmp_path, steps=4, ckpt_every=1)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "log.jsonl"]
    assert checkpoint.load_checkpoint(tmp_path / "ckpt.pt")["step"] == 1


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoint.save_checkpoint(path, {"step": 1, "w": torch.arange(4.0)})
    before = path.read_bytes()

    def broken(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        checkpoint.save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.pt"]
    assert checkpoint.load_checkpoint(path)["step"] == 1


# -------------------------------------------------------------------------------------------- DDP
def _max_abs_diff(a: dict, b: dict) -> tuple[float, str]:
    return max(((a[k][n].float() - b[k][n].float()).abs().max().item(), f"{k}.{n}")
               for k in ("model", "target", "ema") for n in a[k] if a[k][n].is_floating_point())


def test_ddp_two_processes_match_single_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) = one process with the same global batch of 8.

    RAdam instead of the preset's AdamW: its first iterations are plain momentum SGD (the variance
    rectification starts after ~5 steps), so the weights are linear in the averaged gradient and a
    sharding or averaging bug (wrong slice of the batch, of the noise, summed instead of averaged
    gradients) shows directly. AdamW would hide a gradient scale error, and it amplifies round-off:
    test32's GroupNorms have one channel per group, so the conv biases in front of them get gradients
    far below Adam's eps that are pure summation noise, which Adam turns into lr-sized random steps.
    """
    args = ["train", "--preset", "test32", "--data", "phantom:64", "--steps", "3", "--batch-size", "8",
            "--optimizer", "radam", "--eval-every", "0", "--val-split", "", "--ckpt-every", "3", "--no-progress",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ctslib", *args, "--out", str(tmp_path / "ddp")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cli_main([*args, "--out", str(tmp_path / "single")]) == 0
    ddp, single = _load(tmp_path / "ddp"), _load(tmp_path / "single")
    records = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [r["world"] for r in records if r.get("event") == "start"] == [2]   # two processes, rank 0 logs
    assert ddp["step"] == single["step"] == 3
    atol = 1e-6
    diff, name = _max_abs_diff(ddp, single)
    assert diff <= atol, f"DDP and single-process weights differ by {diff:.3g} at {name}"
    assert ddp["optimizer"]["state"][0]["step"] == single["optimizer"]["state"][0]["step"]
    # the tolerance is sharp: the per-rank batch of 4 in one process gives clearly different weights
    assert cli_main([*args, "--batch-size", "4", "--out", str(tmp_path / "half")]) == 0
    assert _max_abs_diff(_load(tmp_path / "half"), single)[0] > 10 * atol


def test_compiled_training_matches_eager(tmp_path):
    """RunOptions(compile=True) (torch.compile of the online and teacher networks) trains the same model:
    the logged losses follow the eager run and the checkpoint keeps the plain module's keys."""
    _run(tmp_path / "eager", steps=3)
    _run(tmp_path / "compiled", steps=3, compile=True)
    logs = {name: [r["loss"] for r in map(json.loads, (tmp_path / name / "log.jsonl").read_text().splitlines())
                   if "loss" in r] for name in ("eager", "compiled")}
    assert len(logs["eager"]) == len(logs["compiled"]) == 3
    assert logs["compiled"] == pytest.approx(logs["eager"], rel=1e-3)
    assert _load(tmp_path / "compiled")["model"].keys() == _load(tmp_path / "eager")["model"].keys()


def test_resume_with_another_model_config_is_a_clear_error(tmp_path):
    """The checkpoint's network must match: another model config names the file and the fields; a
    changed TrainConfig (here the seed) is allowed and recorded in the log."""
    _run(tmp_path, steps=3)
    mcfg, tcfg = preset("test32", None, 4)
    wider = replace(mcfg, denoiser=replace(mcfg.denoiser, base=24))
    with pytest.raises(ValueError, match=r"ckpt\.pt: cannot resume.*denoiser\.base: 16 -> 24"):
        train(wider, replace(tcfg, steps=3, batch_size=8), open_dataset("phantom:64", "train", 32), None,
              RunOptions(out=str(tmp_path), max_steps=4, progress=False, device="cpu", resume=True))
    _run(tmp_path, steps=3, max_steps=4, resume=True, seed=7)
    starts = [e for e in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if e.get("event") == "start"]
    assert starts[-1]["train_config_changes_on_resume"] == ["seed: 0 -> 7"]


def test_evaluation_points_are_the_snapshots_and_a_newer_final_checkpoint(tmp_path):
    """run_folder.evaluation_points (what notebook 05's Fig-3 curves score): every snapshot by its step, the final
    ckpt.pt added only when its step has no snapshot, all in step order; an empty folder has none."""
    from ctslib.run_folder import CHECKPOINT, evaluation_points
    assert evaluation_points(tmp_path) == {}
    for step in (20, 5, 10):
        checkpoint.save_checkpoint(tmp_path / f"snapshot_{step:07d}.pt", {"step": step})
    checkpoint.save_checkpoint(tmp_path / CHECKPOINT, {"step": 20})
    points = evaluation_points(tmp_path)
    assert list(points) == [5, 10, 20] and points[20].name == "snapshot_0000020.pt"
    checkpoint.save_checkpoint(tmp_path / CHECKPOINT, {"step": 30})
    assert list(evaluation_points(tmp_path)) == [5, 10, 20, 30] and evaluation_points(tmp_path)[30].name == CHECKPOINT

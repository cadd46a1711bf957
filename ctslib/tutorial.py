"""The tutorial's settings and runs: profiles, seeding, chunked training with a live plot, run lookup.

The notebooks call this module: `profile` (``quick`` runs on a 2-core CPU, ``full`` is the presets'
real length for a GPU), `setup` (seeds, threads), `train_live` (ctslib.train in resumed chunks,
redrawing the loss/Dice plot), `evaluate_checkpoint` / `snapshot_scores` (evaluate under the profile's
limits) and the lookups that let a notebook reuse another notebook's run (`find_run`,
`convergence_runs`, `tutorial_model`). Quick-profile numbers are illustrative only.
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data.roots import resolve_data
from .records import load_record
from .run_folder import CHECKPOINT, LOG, evaluation_points

REPO = Path(__file__).resolve().parents[1]
QUICK_NOTE = ("Quick-profile numbers are illustrative only: tiny networks trained for a few hundred CPU steps "
              "on small images. They show that the pipeline works, not how well CTS segments.")


# ------------------------------------------------------------------------------------ profiles
@dataclass(frozen=True)
class Profile:
    """What a profile changes in the notebooks; the model/optimiser settings come from the preset."""
    name: str
    preset: str                     # model + training preset of the training notebooks
    steps: int | None               # 03_training length (None = the preset's own TrainConfig.steps)
    ablation_steps: int | None      # 04_ablation length per variant (one budget for all variants)
    fallback_steps: int | None      # 05_convergence's own runs when the 03/04 logs are missing
    chunks: int                     # live-plot refreshes (and EMA snapshots) per training run
    eval_limit: int | None          # test items scored (None = the whole split)
    val_limit: int | None           # validation items scored during training
    members: int                    # ensemble size E for the uncertainty maps
    bootstrap: int                  # bootstrap resamples for the per-volume CI
    stats_limit: int | None         # items per dataset in 02's statistics
    threads: int | None             # torch CPU threads (None: torch's default); see setup()

    def train_steps(self, train_cfg, which: str = "main", override: int | None = None) -> int:
        """Steps of a run: ``override`` (the STEPS parameter), else the profile's, else the preset's."""
        own = {"main": self.steps, "ablation": self.ablation_steps, "fallback": self.fallback_steps}[which]
        return int(override or own or train_cfg.steps)


PROFILES = {
    # 2-core CPU, minutes per notebook: the CPU preset at its own (tuned) length. The ablation's
    # CTS-M run is the identical 03 run (reused), so 04 trains two more models.
    "quick": Profile("quick", preset="test32", steps=None, ablation_steps=None, fallback_steps=100, chunks=6,
                     eval_limit=64, val_limit=32, members=5, bootstrap=200, stats_limit=192, threads=1),
    # one GPU: the small128 preset at its real length, full splits.
    "full": Profile("full", preset="small128", steps=None, ablation_steps=None, fallback_steps=None, chunks=10,
                    eval_limit=None, val_limit=64, members=5, bootstrap=2000, stats_limit=None, threads=None),
}


def profile(name: str) -> Profile:
    """The named profile (``quick`` or ``full``)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def setup(seed: int = 0, threads: int | None = None) -> dict:
    """Seed python, numpy and torch, and set torch's CPU threads (``$CTS_THREADS`` wins; None = torch's default).

    The quick profile uses one thread: on a 2-core machine that is also running anything else,
    torch's spinning thread pool makes a training step 10x slower with 2 threads, while one
    thread costs at most ~1.5x on an idle machine (and gives the same numbers everywhere).
    """
    threads = int(os.environ["CTS_THREADS"]) if os.environ.get("CTS_THREADS") else threads
    if threads:
        torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return {"seed": seed, "threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": torch.cuda.is_available()}


def figures_dir(out: str | Path) -> Path:
    """OUT/figures, created."""
    path = Path(out) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -------------------------------------------------------------------------------- training
def same_run(folder: str | Path, model_cfg, train_cfg, data_spec: str) -> bool:
    """Whether ``folder`` holds a finished run of exactly these configs on this data (from its log)."""
    from .logs import read_log
    log = read_log(Path(folder) / LOG)
    start = next((r for r in log if r.get("event") == "start"), None)
    steps = [r["step"] for r in log if r.get("event") is None and "loss" in r]
    want = json.loads(json.dumps({"model": asdict(model_cfg), "train": asdict(train_cfg)}))
    return (start is not None and (Path(folder) / CHECKPOINT).is_file() and start.get("data") == data_spec
            and start.get("model") == want["model"] and start.get("train") == want["train"]
            and bool(steps) and steps[-1] == train_cfg.steps)


def train_live(model_cfg, train_cfg, train_set, val_set, out: str | Path, steps: int, prof: Profile,
               device: str = "auto", data_spec: str = "", live: bool = True, desc: str = "train",
               reuse: Sequence[str | Path] = ()) -> dict:
    """Train ``steps`` iterations in ``prof.chunks`` resumed chunks, redrawing a live loss/Dice plot
    after each; the schedules use K = ``steps``. Keeps an EMA snapshot at every chunk boundary.

    Resuming is exact: batches, noise and the RNG state are functions of the step (see train.py).
    A folder in ``reuse`` that already holds a finished run of the same configs and data is
    returned instead of training again (``reused`` is then True).
    """
    from tqdm.auto import tqdm

    from .train import RunOptions, train
    from .figures import LiveCurves
    train_cfg = replace(train_cfg, steps=int(steps))
    for folder in map(Path, reuse):
        if same_run(folder, model_cfg, train_cfg, data_spec):
            if live:
                LiveCurves(folder / LOG).update()
            print(f"{desc}: reusing the identical finished run in {folder}")
            return {"step": int(steps), "out": str(folder), "log": str(folder / LOG),
                    "ckpt": str(folder / CHECKPOINT), "reused": True}
    out = Path(out)
    every = max(1, math.ceil(steps / prof.chunks))
    board = LiveCurves(out / LOG) if live else None
    done, result = 0, {}
    with tqdm(total=steps, desc=desc, unit="step") as bar:
        while done < steps:
            stop = min(done + every, steps)
            run = RunOptions(out=str(out), max_steps=stop, eval_every=every, ckpt_every=steps, snapshot_every=every,
                             val_limit=prof.val_limit, device=device, resume=done > 0, force=done == 0, progress=False)
            result = train(model_cfg, train_cfg, train_set, val_set, run, data_spec=data_spec)
            bar.update(stop - done)
            done = stop
            if board is not None:
                board.update()
    return {**result, "log": str(out / LOG), "ckpt": str(out / CHECKPOINT), "reused": False}


def loss_trend(log_path: str | Path, key: str = "loss", frac: float = 0.25) -> tuple[float, float]:
    """Median of ``key`` over the first and over the last ``frac`` of the logged training records."""
    from .logs import log_series, read_log
    _, y = log_series(read_log(log_path), key)
    k = max(1, int(len(y) * frac))
    return float(np.median(y[:k])), float(np.median(y[-k:]))


def evaluate_checkpoint(path: str | Path, dataset, prof: Profile, outputs=("one_step", "aux_head"),
                        device: str = "auto", progress: bool = True, hd95: bool = True) -> dict:
    """Score the EMA weights of a checkpoint/snapshot on ``dataset`` under the profile's limits."""
    from .device import pick_device
    from .evaluate import EvalOptions, evaluate
    from .checkpoint import build_model_from_checkpoint
    model, info = build_model_from_checkpoint(path)
    dev = pick_device(device)
    opts = EvalOptions(outputs=tuple(outputs), members=prof.members, limit=prof.eval_limit, hd95=hd95,
                       n_bootstrap=prof.bootstrap, progress=progress)
    return evaluate(model.to(dev), dataset, info["train_cfg"].mask_encoding, opts, dev)


def snapshot_scores(run_dir: str | Path, dataset, prof: Profile, device: str = "auto") -> list[dict]:
    """Test Dice/IoU (per slice) and Dice per case of every EMA snapshot of a run, and of its final checkpoint
    when that is newer, in step order (Fig-3 style), without HD95."""
    from tqdm.auto import tqdm

    rows = []
    for step, path in tqdm(evaluation_points(run_dir).items(), desc="snapshots"):
        res = evaluate_checkpoint(path, dataset, prof, device=device, progress=False, hd95=False)
        rows.append({"step": step, **{o: {"dice": r["per_slice"]["dice"]["mean"], "iou": r["per_slice"]["iou"]["mean"],
                                          "dice_per_case": r["per_volume"]["dice"]["mean"]} for o, r in res.items()}})
    return rows


def find_run(out: str | Path, notebook: str, run: str, profile_name: str, data: str) -> Path | None:
    """The run folder a notebook recorded for this profile and data (None if absent or stale)."""
    rec = load_record(out, notebook)
    if not rec or rec.get("profile") != profile_name or rec.get("data") != data or not rec.get("runs", {}).get(run):
        return None
    path = Path(rec["runs"][run])
    return path if (path / LOG).is_file() and (path / CHECKPOINT).is_file() else None


def run_configs(preset_name: str, run: str, in_channels: int):
    """(ModelConfig, TrainConfig) of a tutorial run name: a variant ("cts_m"), or a variant with a
    training recipe ("cts_m_paper": CTS-M trained with the paper's CT recipe, config.RECIPES)."""
    from .config import RECIPES, preset, with_recipe
    variant, recipe = run, None
    for name in RECIPES:
        if run.endswith("_" + name):
            variant, recipe = run[: -len(name) - 1], name
    model_cfg, train_cfg = preset(preset_name, variant, in_channels)
    return model_cfg, (with_recipe(train_cfg, recipe) if recipe else train_cfg)


def convergence_runs(out: str | Path, profile_name: str, data: str, train_set, val_set, steps: int | None = None,
                     device: str = "auto", names: Sequence[str] = ("cts_nm", "cts_m")) -> dict:
    """The runs 05_convergence plots, trained only if missing.

    ``fig3``: 03's CTS-M run (else 04's, else a new one); one entry per name (``cts_nm`` / ``cts_m``,
    or ``cts_m_paper``): 04's runs trained under one budget (else new ones with the profile's fallback
    budget). Never fails because the notebooks ran in another order or alone; ``trained`` lists what
    had to be trained here.
    """
    prof = profile(profile_name)
    spec = resolve_data(data)
    pair = {v: find_run(out, "04_ablation", v, profile_name, data) for v in names}
    trained = []
    if None in pair.values():
        for v in pair:
            model_cfg, train_cfg = run_configs(prof.preset, v, train_set.in_channels)
            n = prof.train_steps(train_cfg, "fallback", steps)
            folder = Path(out) / "05_convergence" / v
            pair[v] = Path(train_live(model_cfg, train_cfg, train_set, val_set, folder, n, prof, device, spec,
                                      live=False, desc=v, reuse=[folder])["out"])
            trained.append(v)
    fig3 = find_run(out, "03_training", "cts_m", profile_name, data) or pair.get("cts_m")
    return {"fig3": fig3, **pair, "trained": trained}


def tutorial_model(out: str | Path, profile_name: str, data: str, train_set, val_set, steps: int | None = None,
                   device: str = "auto"):
    """(EMA model, run folder) of a finished CTS-M run of this profile and data: 03's, else 04's,
    else a short one trained now (the profile's fallback budget; shared with 05's fallback)."""
    from .config import preset
    from .device import pick_device
    from .checkpoint import build_model_from_checkpoint
    prof = profile(profile_name)
    folder = find_run(out, "03_training", "cts_m", profile_name, data) or find_run(out, "04_ablation", "cts_m",
                                                                                  profile_name, data)
    if folder is None:
        model_cfg, train_cfg = preset(prof.preset, "cts_m", train_set.in_channels)
        n = prof.train_steps(train_cfg, "fallback", steps)
        fallback = Path(out) / "05_convergence" / "cts_m"
        folder = Path(train_live(model_cfg, train_cfg, train_set, val_set, fallback, n, prof, device, resolve_data(data),
                                 live=False, desc="cts_m", reuse=[fallback])["out"])
    model, _ = build_model_from_checkpoint(folder / CHECKPOINT)
    return model.to(pick_device(device)), folder


def time_call(name: str, fn, batch: int, network_evals: int, device, repeats: int = 3) -> dict:
    """Wall time of ``fn()`` per image, in the row format of `sampling.time_sampling`: a warm-up call, then the
    median of ``repeats`` timed calls with device synchronisation."""
    import time
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    ms = 1000 * float(np.median(times))
    return {"sampler": name, "network_evals": network_evals, "batch": batch, "ms_per_batch": ms,
            "ms_per_image": ms / batch, "device": str(device), "threads": torch.get_num_threads()}


def time_diffusion(model, images, steps: int, repeats: int = 3) -> dict:
    """`time_call` of one `diffusion_segment` sample per image (E = 1, ``steps`` Heun steps) on ``images``."""
    from .baselines.diffusion import diffusion_segment
    device = next(model.parameters()).device
    images = images.to(device)
    calls = []
    hook = model.net.g.register_forward_hook(lambda *_: calls.append(1))
    try:
        diffusion_segment(model, images, steps=steps, members=1)
    finally:
        hook.remove()
    return time_call(f"EDM diffusion, {steps} Heun steps", lambda: diffusion_segment(model, images, steps=steps, members=1),
                     len(images), len(calls), device, repeats)

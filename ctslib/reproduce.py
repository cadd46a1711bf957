"""Headless reproduction of the tutorial, and the settings the notebooks share.

    python -m ctslib reproduce --profile quick --out runs/quick         # the in-repo real sample (DDTI), 2-core CPU
    python -m ctslib reproduce --profile quick --data "$CTS_DATA_ROOT" --out runs/ci   # the full sets' DDTI
    python -m ctslib reproduce --profile quick --data phantom --out runs/phantom       # seeded phantoms, no files
    python -m ctslib reproduce --profile full --data brats:/data/BraTS2021 --out runs/full   # GPU

The runner executes ``notebooks/NN_*.ipynb`` in order with papermill (kernel ``python3``, cwd
``notebooks/``), injecting PROFILE, DATA, OUT, DEVICE (and STEPS when given) into each
notebook's ``parameters`` cell. It writes OUT/notebooks/ (executed copies), OUT/figures/ (the
PNGs the notebooks save), OUT/results/ (one JSON of headline numbers per notebook) and
OUT/summary.md + OUT/summary.json, and stops at the first failing notebook with its error.

The notebooks import the rest of this module: the profiles (``quick`` runs on a 2-core CPU,
``full`` is the presets' real length for a GPU), data-spec resolution, chunked training with a
live plot, evaluation shortcuts and result recording. Quick-profile numbers are illustrative only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
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


# ---------------------------------------------------------------------------------------- data
def is_data_root(data: str) -> bool:
    """A folder holding several data sets (like ``$CTS_DATA_ROOT`` or ``data/sample``), not a dataset spec."""
    p = Path(os.path.expanduser(str(data)))
    return ":" not in str(data)[:12] and p.is_dir() and any((p / d).is_dir() for d in ("ddti", "lgg", "brats2015"))


SAMPLE = "sample"   # DATA's default: the repository's own real-data sample (data/sample)


def resolve_data(data: str) -> str:
    """Dataset spec of the training notebooks. ``sample`` (the default) is the in-repo real sample's
    DDTI crops; a data root such as ``$CTS_DATA_ROOT`` selects its DDTI set (1 channel, nodule ~30% of
    a crop); ``phantom`` and any other spec pass through."""
    from .data import sample_data_root
    data = (data or SAMPLE).strip()
    if data == SAMPLE:
        return f"ddti:{sample_data_root() / 'ddti'}"
    if is_data_root(data):
        return f"ddti:{Path(data).expanduser().resolve() / 'ddti'}"
    return data


def absolute_data(data: str) -> str:
    """DATA with a relative path made absolute from the current folder (the runner's notebooks run
    in notebooks/, so ``--data data/sample`` or ``lgg:data/lgg`` would otherwise miss)."""
    from .data.spec import PATH_KINDS
    if is_data_root(data):
        return str(Path(data).expanduser().resolve())
    head, q, options = str(data).partition("?")
    kind, sep, arg = head.partition(":")
    if sep and kind.strip().lower() in PATH_KINDS and arg and not Path(arg).expanduser().is_absolute():
        return f"{kind}:{Path(arg).expanduser().resolve()}{q}{options}"
    return data


def data_root(data: str = "") -> Path | None:
    """The folder of real data sets: the in-repo sample for ``sample``, DATA if it is a data root,
    else ``$CTS_DATA_ROOT`` (or the sample when that is unset)."""
    from .data import default_data_root, sample_data_root
    if data and data.strip() == SAMPLE:
        return sample_data_root()
    if data and is_data_root(data):
        return Path(data).expanduser().resolve()
    root = default_data_root()
    return root if root.is_dir() else None


# ----------------------------------------------------------------------------------- set-up
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


def jsonable(obj):
    """Numbers, strings, lists and dicts only (numpy/torch scalars converted, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if torch.is_tensor(obj) or isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def record(out: str | Path, notebook: str, results: dict, **meta) -> Path:
    """Write OUT/results/<notebook>.json (the runner gathers these into summary.json / .md)."""
    from .io_utils import write_json_atomic
    path = Path(out) / "results" / f"{notebook}.json"
    write_json_atomic(path, jsonable({"notebook": notebook, **meta, **results}))
    return path


def load_record(out: str | Path, notebook: str) -> dict | None:
    """A notebook's recorded results, or None."""
    path = Path(out) / "results" / f"{notebook}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of dict rows (floats with 4 significant digits)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- training
RUN_FILES = ("ckpt.pt", "log.jsonl")


def clear_run(folder: str | Path) -> Path:
    """Remove a previous run's checkpoint, log and snapshots from ``folder`` (nothing else)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for f in [*(folder / n for n in RUN_FILES), *folder.glob("snapshot_*.pt")]:
        if f.is_file():
            f.unlink()
    return folder


def same_run(folder: str | Path, model_cfg, train_cfg, data_spec: str) -> bool:
    """Whether ``folder`` holds a finished run of exactly these configs on this data (from its log)."""
    from .viz import read_log
    log = read_log(Path(folder) / "log.jsonl")
    start = next((r for r in log if r.get("event") == "start"), None)
    steps = [r["step"] for r in log if r.get("event") is None and "loss" in r]
    want = json.loads(json.dumps({"model": asdict(model_cfg), "train": asdict(train_cfg)}))
    return (start is not None and (Path(folder) / "ckpt.pt").is_file() and start.get("data") == data_spec
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
    from .viz import LiveCurves
    train_cfg = replace(train_cfg, steps=int(steps))
    for folder in map(Path, reuse):
        if same_run(folder, model_cfg, train_cfg, data_spec):
            if live:
                LiveCurves(folder / "log.jsonl").update()
            print(f"{desc}: reusing the identical finished run in {folder}")
            return {"step": int(steps), "out": str(folder), "log": str(folder / "log.jsonl"),
                    "ckpt": str(folder / "ckpt.pt"), "reused": True}
    out = clear_run(out)
    every = max(1, math.ceil(steps / prof.chunks))
    board = LiveCurves(out / "log.jsonl") if live else None
    done, result = 0, {}
    with tqdm(total=steps, desc=desc, unit="step") as bar:
        while done < steps:
            stop = min(done + every, steps)
            run = RunOptions(out=str(out), max_steps=stop, eval_every=every, ckpt_every=steps, snapshot_every=every,
                             val_limit=prof.val_limit, device=device, resume=done > 0, progress=False)
            result = train(model_cfg, train_cfg, train_set, val_set, run, data_spec=data_spec)
            bar.update(stop - done)
            done = stop
            if board is not None:
                board.update()
    return {**result, "log": str(out / "log.jsonl"), "ckpt": str(out / "ckpt.pt"), "reused": False}


def loss_trend(log_path: str | Path, key: str = "loss", frac: float = 0.25) -> tuple[float, float]:
    """Median of ``key`` over the first and over the last ``frac`` of the logged training records."""
    from .viz import log_series, read_log
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


def score_rows(results: dict, model: str) -> list[dict]:
    """Table-2-style rows (per-slice Dice and IoU, mean and std) of one model's evaluation."""
    rows = []
    for output, r in results.items():
        d, i = r["per_slice"]["dice"], r["per_slice"]["iou"]
        rows.append({"model": model, "output": output, "dice": d["mean"], "dice_std": d["std"],
                     "iou": i["mean"], "iou_std": i["std"], "n": r["per_slice"]["n"]})
    return rows


OUTPUT_NAMES = {"one_step": "consistency sample (1 step)", "multistep": "consistency sample (multistep)",
                "ensemble": "consistency ensemble", "aux_head": "auxiliary head alone"}


def pm_table(rows: Sequence[dict]) -> str:
    """Table-2-style Markdown: model, output, Dice and IoU as mean ± std, number of test slices."""
    cell = lambda m, s: "n/a" if m is None else f"{100 * m:.1f} ± {100 * (s or 0):.1f}"  # noqa: E731
    return markdown_table([{"model": r["model"], "output": OUTPUT_NAMES.get(r["output"], r["output"]),
                            "Dice (%)": cell(r["dice"], r["dice_std"]), "IoU (%)": cell(r["iou"], r["iou_std"]),
                            "test slices": r["n"]} for r in rows])


def snapshot_scores(run_dir: str | Path, dataset, prof: Profile, device: str = "auto") -> list[dict]:
    """Test Dice/IoU of every EMA snapshot of a run, and of its final checkpoint when that is
    newer, in step order (Fig-3 style), without HD95."""
    from tqdm.auto import tqdm

    from .checkpoint import load_checkpoint
    points = {int(p.stem.split("_")[1]): p for p in Path(run_dir).glob("snapshot_*.pt")}
    final = Path(run_dir) / "ckpt.pt"
    if final.is_file():
        points.setdefault(int(load_checkpoint(final)["step"]), final)
    rows = []
    for step, path in tqdm(sorted(points.items()), desc="snapshots"):
        res = evaluate_checkpoint(path, dataset, prof, device=device, progress=False, hd95=False)
        rows.append({"step": step, **{o: {"dice": r["per_slice"]["dice"]["mean"], "iou": r["per_slice"]["iou"]["mean"]}
                                      for o, r in res.items()}})
    return rows


def find_run(out: str | Path, notebook: str, run: str, profile_name: str, data: str) -> Path | None:
    """The run folder a notebook recorded for this profile and data (None if absent or stale)."""
    rec = load_record(out, notebook)
    if not rec or rec.get("profile") != profile_name or rec.get("data") != data or not rec.get("runs", {}).get(run):
        return None
    path = Path(rec["runs"][run])
    return path if (path / "log.jsonl").is_file() and (path / "ckpt.pt").is_file() else None


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
    model, _ = build_model_from_checkpoint(folder / "ckpt.pt")
    return model.to(pick_device(device)), folder


# --------------------------------------------------------------------------------- 06: sampling
def count_denoiser_calls(model, fn) -> tuple[int, object]:
    """(number of denoiser g forward passes, result) while running ``fn()``: the sampling cost."""
    calls = []
    hook = model.g.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = fn()
    finally:
        hook.remove()
    return len(calls), result


def time_sampling(model, images: torch.Tensor, settings: dict[str, dict], repeats: int = 5) -> list[dict]:
    """Wall time of ``segment(model, images, **kwargs)`` per setting: one warm-up call, then the
    median of ``repeats`` timed calls, with device synchronisation and no data loading (docs/method.md section 3.6)."""
    from .sampling import segment
    device = next(model.parameters()).device
    images = images.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for name, kwargs in settings.items():
        calls, _ = count_denoiser_calls(model, lambda: segment(model, images, **kwargs))     # warm-up
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            segment(model, images, **kwargs)
            sync()
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        rows.append({"sampler": name, "network_evals": calls, "batch": len(images), "ms_per_batch": ms,
                     "ms_per_image": ms / len(images), "device": str(device), "threads": torch.get_num_threads()})
    return rows


def level_sweep(model, dataset, prof: Profile, levels: Sequence[float] = (0.5, 0.8, 2.0, 5.0),
                device: str = "auto", mask_encoding: str = "pm1") -> list[dict]:
    """Validation Dice of two-step sampling for each intermediate level tau (choose tau on val, never on test)."""
    from .device import pick_device
    from .evaluate import multistep_sweep
    sweep = multistep_sweep(model, dataset, levels, mask_encoding, limit=prof.eval_limit, device=pick_device(device))
    return [{"tau": tau, "val_dice": r["dice"], "val_iou": r["iou"]} for tau, r in sweep.items()]


# ---------------------------------------------------------------------------------- 02: data
def demo_volume(brats: str | Path | None = None) -> dict:
    """One BraTS-style subject (the first under ``brats``) as arrays, or a seeded phantom stack.

    Returns channels (C,X,Y,Z) raw, mask (X,Y,Z) bool, brain (X,Y,Z) bool, names, case, source.
    """
    if brats and Path(brats).is_dir():
        from .data.volumes import VolumeConfig, case_files, find_cases, load_case, resolve_layout
        folder = find_cases(Path(brats))[0]
        layout = resolve_layout(VolumeConfig(), folder)
        channels, mask, brain = load_case(case_files(folder, layout), layout)
        return {"channels": channels, "mask": mask, "brain": brain, "names": list(layout.modalities),
                "case": folder.name, "source": str(folder)}
    from .data.phantoms import PhantomConfig, make_phantom
    items = [make_phantom(i, PhantomConfig(size=96), seed=0, split="train") for i in range(24)]
    channels = torch.stack([im for im, _ in items], -1).numpy()
    mask = torch.stack([m[0] for _, m in items], -1).numpy() > 0.5
    return {"channels": channels, "mask": mask, "brain": (channels != 0).any(0),
            "names": ["t1", "t1ce", "t2", "flair"], "case": "phantom stack", "source": "phantom (not a real volume)"}


def pair_specs(root: Path | None) -> dict[str, str]:
    """Specs of the 2-D pair sets shown in 02: DDTI and LGG from the data root, else phantoms."""
    if root is not None and (root / "ddti").is_dir() and (root / "lgg").is_dir():
        return {"DDTI (thyroid ultrasound)": f"ddti:{root / 'ddti'}", "LGG (brain MRI)": f"lgg:{root / 'lgg'}"}
    return {"phantom-us (ultrasound-like)": "phantom-us", "phantom (MRI-like)": "phantom"}


def resolution_ceilings(specs: dict[str, str], sizes: Sequence[int] = (32, 64, 128, 256), split: str = "train",
                        limit: int | None = None) -> list[dict]:
    """Per dataset and working size: Dice of the expert masks resized to that size and mapped back to
    the files' grid (`evaluate.resolution_ceiling`), i.e. the best any model at that size can score.
    Datasets without files behind them (the phantoms) have no native grid and are left out."""
    from .data import open_dataset
    from .evaluate import EvalOptions, resolution_ceiling
    opts = EvalOptions(hd95=False, n_bootstrap=0, progress=False)
    rows = []
    for name, spec in specs.items():
        for size in sizes:
            ds = open_dataset(spec, split, size, limit=limit)
            if not ds.has_native_grid:
                break
            r = resolution_ceiling(ds, opts)["resized_truth"]["per_slice"]
            rows.append({"dataset": name, "size": size, "dice_all": r["dice"]["mean"],
                         "dice_tumour": r["dice_tumour"]["mean"], "n_tumour": r["n_tumour"], "n": r["n"]})
    return rows


# ------------------------------------------------------------------------------------ runner
def discover(folder: str | Path = NOTEBOOK_DIR, only: str | None = None) -> list[Path]:
    """Numbered notebooks NN_*.ipynb in order; ``only`` = comma-separated numbers or names."""
    folder = Path(folder)
    found = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        found = [p for p in found if any(p.stem == k or p.stem.startswith(k if "_" in k else f"{k}_") for k in keys)]
    return found


def notebook_parameters(path: Path, values: dict) -> dict:
    """The subset of ``values`` that the notebook's parameters cell declares."""
    import papermill as pm
    declared = pm.inspect_notebook(str(path))
    return {k: v for k, v in values.items() if k in declared}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def write_summary(out: Path, meta: dict, runs: list[dict]) -> dict:
    """Gather the results of the notebooks in ``runs`` (OUT/results/*.json) into OUT/summary.json and
    a readable OUT/summary.md."""
    from .io_utils import write_json_atomic
    ran = {r["name"] for r in runs}
    results = {p.stem: json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json")) if p.stem in ran}
    figures = sorted(str(p.relative_to(out)) for p in (out / "figures").glob("*.png"))
    status = "failed" if any(r["status"] == "failed" for r in runs) else "ok"
    summary = jsonable({**meta, "status": status, "notebooks": runs, "results": results, "figures": figures})
    write_json_atomic(out / "summary.json", summary)
    lines = [f"# CTS tutorial reproduction ({meta['profile']} profile)", "",
             f"- data: `{meta['data']}`; device: `{meta['device']}`; status: **{status}**", ""]
    if meta["profile"] == "quick":
        lines += [f"> {QUICK_NOTE}", ""]
    lines += [markdown_table([{"notebook": r["name"], "status": r["status"], "seconds": round(r["seconds"], 1)}
                              for r in runs]), ""]
    for name, rec in results.items():
        lines += [f"## {name}", ""]
        headline = rec.get("headline") or {}
        if headline:
            lines += [markdown_table([{"quantity": k, "value": v} for k, v in _flat(headline).items()]), ""]
        if rec.get("table"):
            lines += [markdown_table(rec["table"]), ""]
    if figures:
        lines += ["## Figures", ""] + [f"- [{f}]({f})" for f in figures] + [""]
    (out / "summary.md").write_text("\n".join(lines))
    return summary


def _error_text(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError
    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue} (cell {exc.cell_index}, In [{exc.exec_count}]){exc}"
    return f"{type(exc).__name__}: {exc}"


def cmd_reproduce(args) -> int:
    try:
        import papermill as pm
    except ImportError:
        print("reproduce needs papermill: pip install -e '.[notebooks]'", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm
    notebooks = discover(args.notebooks, args.only)
    if not notebooks:
        print(f"no notebooks NN_*.ipynb matching {args.only or '*'} in {args.notebooks}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser().resolve()
    for sub in ("notebooks", "figures", "results"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    data = absolute_data(args.data)
    from .viz import HEADLESS_ENV
    os.environ[HEADLESS_ENV] = "1"        # the kernels inherit it: widgets draw once as plain output (viz.interactive)
    values = {"PROFILE": args.profile, "DATA": data, "OUT": str(out), "DEVICE": args.device}
    if args.steps is not None:
        values["STEPS"] = args.steps
    meta = {"profile": args.profile, "data": data, "device": args.device, "out": str(out),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    runs: list[dict] = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        executed = out / "notebooks" / nb.name
        (out / "results" / f"{nb.stem}.json").unlink(missing_ok=True)   # no stale numbers from an earlier run
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(executed), parameters=notebook_parameters(nb, values),
                                kernel_name=args.kernel, cwd=str(Path(args.notebooks).resolve()),
                                execution_timeout=args.timeout, progress_bar=args.cell_progress,
                                log_output=args.log_output)
        except Exception as exc:  # papermill's cell errors, kernel start failures, timeouts
            runs.append({"name": nb.stem, "status": "failed", "seconds": time.perf_counter() - t0,
                         "executed": str(executed), "error": _error_text(exc)[-4000:]})
            bar.close()
            write_summary(out, meta, runs)
            print(f"\nnotebook {nb.name} FAILED; executed copy with the error: {executed}\n{_error_text(exc)}",
                  file=sys.stderr)
            print(f"stopped at the first failing notebook; summary: {out / 'summary.md'}", file=sys.stderr)
            return 1
        runs.append({"name": nb.stem, "status": "ok", "seconds": time.perf_counter() - t0, "executed": str(executed)})
        write_summary(out, meta, runs)
    bar.close()
    print(f"{len(runs)} notebooks ok; summary: {out / 'summary.md'}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .cli import HELP_FMT
    """Register ``reproduce`` on the CLI (ctslib/cli.py discovers this function)."""
    p = subparsers.add_parser(
        "reproduce", help="execute the tutorial notebooks headlessly and summarise their results",
        description="Execute notebooks/NN_*.ipynb in order with papermill, injecting the parameters; write the "
                    "executed notebooks, figures and summary.md/summary.json to OUT; stop at the first failure.",
        formatter_class=HELP_FMT)
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: minutes on a 2-core CPU (illustrative numbers); full: the presets' real length (GPU)")
    p.add_argument("--data", default=SAMPLE,
                   help="dataset spec for training: sample (the in-repo real DDTI sample), phantom, lgg:PATH, "
                        "ddti:PATH, brats:PATH, ... or a data root folder such as $CTS_DATA_ROOT (trains on its DDTI set)")
    p.add_argument("--out", default="runs/reproduce", help="output folder (notebooks/, figures/, results/, summary.*)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (injected as DEVICE)")
    p.add_argument("--steps", type=int, default=None, help="training steps of every run (03, each 04 variant, 05/06 fallbacks); unset: the profile's choice")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="folder of the numbered notebooks (also the cwd)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    p.add_argument("--timeout", type=int, default=3600, help="per-cell execution timeout in seconds")
    p.add_argument("--cell-progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show papermill's per-cell progress bar")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' own output to the terminal")
    p.set_defaults(func=cmd_reproduce)
    return p

"""Quality: a Table-1-style comparison of CTS and its baselines, each trained with the same budget.

    python benchmarks/quality.py --data ddti --preset test32 --steps 200 --json benchmarks/results/quality_cpu_ddti.json
    python benchmarks/quality.py --data packed:gpu_pack/lgg128.npz --preset small128 --steps auto:150 --device cuda

Rows (all on the same data, batch size, optimiser, learning rate, EMA and number of steps):
  cts_nm, cts_m, cts_fm  CTS trained by ctslib.train; scored as the one-step consistency sample,
                         its 5-member ensemble and, separately, the auxiliary head y_hat
  supervised             the image encoder h with its head alone (BCE + Dice loss; --supervised-loss mse for L_S)
  diffusion              an EDM denoiser on the CTS-M network, Heun sampler, ensemble of 5
  supervised_same_seconds  (--equal-seconds ROW) the supervised U-Net trained for as many steps as fit
                         into ROW's training seconds of the same seed (equal compute instead of equal steps)
Everything is scored on the test split by ctslib's protocol (hard masks, fixed thresholds): LGG and
BraTS per patient (3-D Dice per volume), DDTI and the phantoms per image. The JSON (written again
after every row, so a killed run keeps the finished rows) holds the device, the date and the full
summaries. `--steps auto:SECONDS` measures a few steps of each row and picks the one step count
that fits all rows' training (every seed of every row) into SECONDS.

Every row also records its cost (`cost`): parameters, GFLOP per training step (FlopCounterMode on one real
step; a CTS row's online g, online h and teacher forward separately) and its training seconds, wall and CPU
(`time.process_time`: the compute, whatever else shares the machine), per step and per seed. `--equal-seconds
cts_m@anchored` adds the supervised U-Net trained with that row's training seconds per seed (`--equal-clock`
cpu by default): its steps are the seconds divided by the supervised step's seconds, measured just before.

`--seeds 0,1,2` trains and scores every row once per seed (training and sampling seed alike): short
runs are chaotic, so one seed per row is not a fair comparison. A row's record keeps the first
seed's full summaries under `outputs` and adds `seeds`, `per_seed` (each seed's headline Dice and
IoU means per output, its training steps and seconds) and `across_seeds` ({output: dice_mean,
dice_std (sample std; None for one seed), iou_mean, n}). `--grid native|model` picks where the
masks are scored (ctslib.evaluate.EvalOptions.grid); it is stored as the JSON's top-level `grid`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.cost import parameters, step_flops, step_seconds  # noqa: E402
from benchmarks.measure import device_info, sync  # noqa: E402
from benchmarks.packed import open_any, source_kind  # noqa: E402
from ctslib.baselines import (EDMConfig, EDMDenoiser, SupervisedConfig, diffusion_segmenter,  # noqa: E402
                              evaluate_segmenter, supervised_segmenter, train_diffusion, train_supervised)
from ctslib.baselines.diffusion import network_evaluations  # noqa: E402
from ctslib.checkpoint import build_model_from_checkpoint  # noqa: E402
from ctslib.cli import HELP_FMT  # noqa: E402
from ctslib.config import RECIPES, ModelConfig, override, preset, with_recipe, with_variant  # noqa: E402
from ctslib.data.spec import spec_usage  # noqa: E402
from ctslib.device import autocast, pick_device  # noqa: E402
from ctslib.evaluate import (DEFAULT_LEVELS, EvalOptions, dice_by_noise_level, evaluate, headline_level,  # noqa: E402
                             resolution_ceiling)
from ctslib.io_utils import write_json_atomic  # noqa: E402
from ctslib.model import CTSModel, count_parameters  # noqa: E402
from ctslib.train import RunOptions, train  # noqa: E402

ROWS = {
    "cts_nm": "CTS-nM", "cts_m": "CTS-M", "cts_fm": "CTS-FM",
    "supervised": "Supervised U-Net (h alone)", "supervised_mse": "Supervised U-Net (h alone, L_S = MSE)",
    "diffusion": "Diffusion (EDM on the CTS-M network)",
}
# The supervised U-Net given the training seconds of the row named by --equal-seconds (equal compute).
EQUAL_ROW = "supervised_same_seconds"
NOISE_SIGMAS = (0.002, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
LEVEL_LABEL = {"per_volume": "per-patient Dice", "per_slice": "per-image Dice"}


class TimeBudgetExceeded(RuntimeError):
    """Raised by DeadlineDataset once the row's wall-clock budget is spent."""


class DeadlineDataset(torch.utils.data.Dataset):
    """A view of a dataset that raises TimeBudgetExceeded after `deadline` (stops ctslib.train.train cleanly)."""

    def __init__(self, base, deadline: float | None):
        self.base, self.deadline = base, deadline
        self.in_channels = base.in_channels

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeBudgetExceeded("time budget spent")
        return self.base[i]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--data", default="phantom", help=f"dataset spec ({spec_usage()}) "
                                                     "or packed:PATH.npz from benchmarks/pack_data.py")
    p.add_argument("--preset", default="test32", help="model preset (test32, tiny64, small128, paper256)")
    p.add_argument("--rows", default="cts_nm,cts_m,cts_fm,supervised,diffusion", help="comma-separated rows")
    p.add_argument("--steps", default="200", help="training steps per row, or auto:SECONDS for all rows together")
    p.add_argument("--batch-size", type=int, default=None, help="batch size of every row (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of every row (default: the preset's)")
    p.add_argument("--s1", type=int, default=None, help="CT curriculum end s1 (default: the preset's; short runs want ~5, see the README's CT settings table)")
    p.add_argument("--recipe", default=None, help="CTS training recipe for every CTS row: paper or anchored "
                                                 "(default: the preset's); `cts_m@paper` in --rows picks one per row")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a TrainConfig field for every row (repeatable), e.g. --set anchor.weight=2")
    p.add_argument("--model-set", dest="model_overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a ModelConfig field for every row, e.g. --model-set detach_signals=true (repeatable)")
    p.add_argument("--ema-rate", default="auto", help="evaluation EMA rate; auto = min(preset, 1 - 10/steps)")
    p.add_argument("--seed", type=int, default=0, help="training and sampling seed")
    p.add_argument("--seeds", default=None, help="comma-separated seeds: every row is trained and scored once per "
                                                  "seed (default: just --seed)")
    p.add_argument("--grid", choices=["native", "model"], default="native",
                   help="score on the dataset's own grid (native) or at the model's resolution (model)")
    p.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                   help="also score the expert masks resized to the model grid and back (the resolution ceiling; "
                        "native grid only)")
    p.add_argument("--split", default="test", help="split to score")
    p.add_argument("--level", choices=["auto", "per_slice", "per_volume"], default="auto",
                   help="headline Dice: per_volume (per patient) for LGG/BraTS, per_slice (per image) otherwise")
    p.add_argument("--cts-outputs", default="one_step,ensemble,aux_head",
                   help="CTS outputs to score: one_step, multistep, ensemble, aux_head")
    p.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="CTS multistep levels after sigma_max (if multistep is scored)")
    p.add_argument("--members", type=int, default=5, help="ensemble size E (CTS ensemble and diffusion)")
    p.add_argument("--diffusion-steps", type=int, default=20, help="diffusion sampler steps N")
    p.add_argument("--diffusion-solver", choices=["heun", "euler"], default="heun", help="diffusion sampler")
    p.add_argument("--equal-seconds", default=None, metavar="ROW",
                   help=f"add the row {EQUAL_ROW}: the supervised U-Net trained for the training seconds of ROW "
                        "(a CTS row of --rows, e.g. cts_m@anchored), seed by seed")
    p.add_argument("--equal-clock", choices=["cpu", "wall"], default="cpu",
                   help="the seconds --equal-seconds matches: CPU time of the process (robust to other jobs on the "
                        "machine) or wall time")
    p.add_argument("--flops", action=argparse.BooleanOptionalAction, default=True,
                   help="count each row's GFLOP per training step on one real step")
    p.add_argument("--supervised-loss", choices=["bce_dice", "mse"], default="bce_dice",
                   help="loss of the `supervised` row (the `supervised_mse` row always uses L_S = MSE)")
    p.add_argument("--noise-levels", type=int, default=64,
                   help="score f(x^m + sigma z, sigma) per noise level on this many test images with a mask, "
                        "per CTS row (the chain diagnostic; 0 = off)")
    p.add_argument("--train-limit", type=int, default=None, help="use at most this many training items")
    p.add_argument("--eval-limit", type=int, default=None, help="score at most this many test items")
    p.add_argument("--eval-batch", type=int, default=32, help="evaluation batch size")
    p.add_argument("--hd95", action=argparse.BooleanOptionalAction, default=True, help="compute HD95")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples for the per-volume CI")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds for the whole run; rows that no longer "
                                                                    "fit are skipped, a row past it is cut short")
    p.add_argument("--work-dir", default=None, help="checkpoints and logs (default: a temporary folder, removed)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--tag", default="", help="free-text label stored in the JSON")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--parallel-rows", action="store_true",
                   help="train and score the rows at the same time, one process each, on the same device (a GPU that "
                        "one small model leaves idle); needs a fixed --steps so every row keeps the same budget")
    args = p.parse_args(argv)
    if args.parallel_rows and args.steps.startswith("auto:"):
        p.error("--parallel-rows needs a fixed --steps (auto:SECONDS probes rows one after the other)")
    if args.equal_seconds:
        if args.parallel_rows:
            p.error("--equal-seconds needs the rows one after the other (it takes the seconds of a finished row)")
        rows = [r.strip() for r in args.rows.split(",") if r.strip()]
        if args.equal_seconds not in rows or not args.equal_seconds.startswith("cts"):
            p.error(f"--equal-seconds {args.equal_seconds}: name a CTS row of --rows ({args.rows})")
        rows.insert(rows.index(args.equal_seconds) + 1, EQUAL_ROW)
        args.rows = ",".join(rows)
    try:
        args.seeds = parse_seeds(args.seeds, args.seed)
    except ValueError as exc:
        p.error(f"--seeds: {exc}")
    return args


def parse_seeds(text: str | None, default: int) -> list[int]:
    """--seeds "0,1,2" as a list of distinct integers; None gives [default]."""
    if text is None:
        return [default]
    seeds = [int(x) for x in text.split(",") if x.strip()]
    if not seeds:
        raise ValueError("no seed given")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated seed in {seeds}")
    return seeds


def auto_steps(seconds: float, probes: dict[str, float], eval_s: float, n_seeds: int) -> int:
    """The one step count (a multiple of 10, at least 10) whose training of every row and seed fits `seconds`."""
    per_seed = seconds / n_seeds - eval_s
    return max(int(max(per_seed, 0) / (sum(probes.values()) * 1.25)) // 10 * 10, 10)


def model_config(args) -> ModelConfig:
    """The preset's ModelConfig with --model-set applied (the data are opened at its image_size)."""
    if any(item.partition("=")[0].strip().replace("-", "_") == "in_channels" for item in args.model_overrides):
        raise SystemExit("--model-set in_channels=...: the image channels come from the data, not from the command line")
    return override(preset(args.preset)[0], args.model_overrides)


def open_configs_and_data(args):
    """(ModelConfig, TrainConfig, train split, evaluation split), both splits at the model's image size, so that
    `--model-set image_size=N` trains and scores at N, not at the preset's size; channels come from the data."""
    mcfg, tcfg = model_config(args), preset(args.preset)[1]
    train_set = open_any(args.data, "train", mcfg.image_size, args.train_limit)
    test_set = open_any(args.data, args.split, mcfg.image_size, args.eval_limit)
    return replace(mcfg, in_channels=train_set.in_channels), tcfg, train_set, test_set


def auto_ema(preset_rate: float, steps: int) -> float:
    """min(preset rate, 1 - 10/steps): the EMA then averages roughly the last tenth of a short run."""
    return min(preset_rate, 1.0 - 10.0 / max(steps, 20))


def probe_seconds(row: str, mcfg, tcfg, dataset, device, warmup: int = 3, n: int = 8) -> float:
    """Wall seconds per training iteration of a row (loss, backward, optimiser step; data loading included)."""
    return step_seconds({row: (row, mcfg, tcfg)}, dataset, device, warmup, n)[row]["wall_s"]


def row_cost(spec: str, record: dict, args, mcfg, tcfg, train_set, device) -> dict:
    """What a row costs: parameters, GFLOP per training step (one real step, FlopCounterMode; CTS split into
    online g, online h and the teacher's forward) and the training seconds per step, wall and CPU, over its seeds."""
    row = split_row(spec)[0]
    base = "supervised" if row == EQUAL_ROW else row
    cost = {"params": parameters(base, mcfg)}
    if base.startswith("cts"):
        cost["params_parts"] = count_parameters(CTSModel(with_variant(mcfg, base)))
    if args.flops:
        cost["gflop_per_step"] = step_flops(base, mcfg, row_train_config(spec, tcfg, args), train_set, device)
    runs = [e["train"] for e in record.get("per_seed", []) if "train" in e and e["train"]["steps"]]
    if runs:
        for key in ("seconds", "cpu_seconds"):
            cost[f"train_{key}_mean"] = statistics.fmean(r[key] for r in runs)
            cost[f"{key}_per_step"] = statistics.fmean(r[key] / r["steps"] for r in runs)
    return cost


@torch.no_grad()
def probe_diffusion_eval_seconds(mcfg, args, n_test: int, in_channels: int, device, repeats: int = 3) -> float:
    """Estimated seconds to sample the diffusion row on the test split: batches x NFE x one forward of E*B images."""
    model = EDMDenoiser(mcfg).to(device).eval()
    b = min(args.eval_batch, n_test) * args.members
    size = mcfg.image_size
    image = torch.randn(b, in_channels, size, size, device=device)
    x = torch.randn(b, 1, size, size, device=device)
    sigma = torch.ones(b, device=device, dtype=torch.float64)
    with autocast(device):
        enc = model.encode(image)
        model(x, sigma, image, encoded=enc)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x, sigma, image, encoded=enc)
        sync(device)
    per_forward = (time.perf_counter() - t0) / repeats
    batches = -(-n_test // args.eval_batch)
    return batches * network_evaluations(args.diffusion_steps, args.diffusion_solver) * per_forward


def row_outputs(row: str, args) -> dict[str, dict]:
    """What each scored output is: a description and network evaluations per image."""
    levels = [float(x) for x in args.levels.split(",") if x.strip()]
    if row.startswith("cts"):
        desc = {"one_step": ("consistency sample, 1 step", 1),
                "multistep": (f"consistency sample, {1 + len(levels)} steps", 1 + len(levels)),
                "ensemble": (f"consistency, 1 step x {args.members}", args.members),
                "aux_head": ("auxiliary head y_hat > 0.5", 0)}
        return {o: {"desc": desc[o][0], "nfe": desc[o][1]} for o in args.cts_outputs.split(",") if o.strip()}
    if row.startswith("supervised"):
        return {"unet": {"desc": "U-Net y_hat > 0.5", "nfe": 0}}
    nfe = network_evaluations(args.diffusion_steps, args.diffusion_solver)
    return {"ensemble": {"desc": f"EDM {args.diffusion_solver} {args.diffusion_steps} steps x {args.members}",
                         "nfe": nfe * args.members},
            "aux_head": {"desc": "auxiliary head y_hat > 0.5", "nfe": 0}}


def warm_item_cache(dataset) -> None:
    """Read every training item once, so that the data set's on-disk item cache is filled before any row is
    timed: otherwise the first seed of the first row pays for decoding the files (and --equal-seconds hands
    those seconds to the supervised U-Net)."""
    for _ in torch.utils.data.DataLoader(dataset, batch_size=64):
        pass


def ceiling_record(args, test_set) -> dict | None:
    """The expert masks resized to the model grid and mapped back, scored like a row: what resolution
    alone costs on the native grid (None with --no-ceiling, when scoring at the model's resolution or
    without native masks)."""
    if not args.ceiling or args.grid != "native" or not test_set.has_native_grid:
        return None
    t0 = time.perf_counter()
    opts = EvalOptions(batch_size=args.eval_batch, seed=args.seeds[0], hd95=args.hd95, n_bootstrap=args.n_bootstrap,
                       progress=args.progress)
    return {"label": "Expert mask at the model's size", "desc": "resized to the model grid and back (resolution ceiling)",
            "outputs": resolution_ceiling(test_set, opts), "seconds": time.perf_counter() - t0}


def split_row(row: str) -> tuple[str, str | None]:
    """'cts_m@anchored' -> ('cts_m', 'anchored'); a plain row has no recipe of its own."""
    base, _, recipe = row.partition("@")
    return base, recipe or None


def row_label(row: str, equal_seconds: str | None = None) -> str:
    base, recipe = split_row(row)
    if base == EQUAL_ROW:
        return f"{ROWS['supervised']}, {row_label(equal_seconds)}'s training seconds"
    return ROWS[base] + (f" ({recipe} recipe)" if recipe else "")


def row_train_config(row: str, tcfg, args):
    """The row's TrainConfig: its own recipe (cts_m@paper) if it names one, then every --set override."""
    _, recipe = split_row(row)
    return override(with_recipe(tcfg, recipe), args.overrides) if recipe else tcfg


def run_row(row: str, args, mcfg, tcfg, train_set, test_set, device, work: Path, deadline: float | None) -> dict:
    """Train one row with tcfg.seed, score it on the test split sampling with the same seed; returns its JSON record."""
    spec, out = row, work / row.replace("@", "_")
    tcfg = row_train_config(spec, tcfg, args)
    row, _ = split_row(spec)
    shutil.rmtree(out, ignore_errors=True)
    steps = tcfg.steps
    run = RunOptions(out=str(out), max_steps=steps, log_every=max(steps // 50, 1), eval_every=0,
                     ckpt_every=max(steps // 4, 1), device=str(device), progress=args.progress)
    eval_opts = EvalOptions(outputs=tuple(o for o in args.cts_outputs.split(",") if o.strip()),
                            levels=tuple(float(x) for x in args.levels.split(",") if x.strip()),
                            members=args.members, batch_size=args.eval_batch, seed=tcfg.seed, hd95=args.hd95,
                            n_bootstrap=args.n_bootstrap, progress=args.progress, limit=None, grid=args.grid)
    record = {"row": spec, "label": row_label(spec, args.equal_seconds), "outputs_info": row_outputs(row, args)}
    if row.startswith("cts") or row == "diffusion":
        record["train_config"] = asdict(tcfg)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if row.startswith("cts"):
        cfg = with_variant(mcfg, row)
        record["params"] = count_parameters(CTSModel(cfg))["total"]
        truncated = False
        try:
            train(cfg, tcfg, DeadlineDataset(train_set, deadline), None, run, data_spec=args.data)
        except TimeBudgetExceeded:
            truncated = True
            if not (out / "ckpt.pt").exists():
                raise
        model, info = build_model_from_checkpoint(out / "ckpt.pt", "ema", map_location="cpu")
        model.to(device)
        seconds = time.perf_counter() - t0
        record["train"] = {"steps": info["step"], "requested_steps": steps, "truncated": truncated, "seconds": seconds,
                           "cpu_seconds": time.process_time() - cpu0, "img_per_s": info["step"] * tcfg.batch_size / seconds}
        t1 = time.perf_counter()
        results = evaluate(model, test_set, tcfg.mask_encoding, eval_opts, device)
        if args.noise_levels:
            record["noise_levels"] = dice_by_noise_level(model, test_set, NOISE_SIGMAS, tcfg.mask_encoding,
                                                         limit=None, max_images=args.noise_levels,
                                                         seed=tcfg.seed, device=device)
    elif row in ("supervised", "supervised_mse", EQUAL_ROW):
        sup = SupervisedConfig(loss="mse" if row == "supervised_mse" else args.supervised_loss)
        model, summary = train_supervised(mcfg, tcfg, train_set, run, sup, args.data, deadline)
        summary["cpu_seconds"] = time.process_time() - cpu0
        record["params"] = sum(p.numel() for p in model.parameters())
        record["loss"] = sup.loss
        record["train"] = {k: summary[k] for k in ("step", "requested_steps", "truncated", "seconds", "cpu_seconds",
                                                   "img_per_s")}
        record["train"]["steps"] = record["train"].pop("step")
        t1 = time.perf_counter()
        results = evaluate_segmenter(supervised_segmenter(model), test_set, eval_opts, device)
    else:
        edm = EDMConfig(steps=args.diffusion_steps, solver=args.diffusion_solver, members=args.members)
        model, summary = train_diffusion(mcfg, tcfg, train_set, run, edm, args.data, deadline)
        summary["cpu_seconds"] = time.process_time() - cpu0
        record["params"] = sum(p.numel() for p in model.parameters())
        record["edm"] = asdict(edm)
        record["train"] = {k: summary[k] for k in ("step", "requested_steps", "truncated", "seconds", "cpu_seconds",
                                                   "img_per_s")}
        record["train"]["steps"] = record["train"].pop("step")
        t1 = time.perf_counter()
        results = evaluate_segmenter(diffusion_segmenter(model, args.diffusion_steps, args.members,
                                                         args.diffusion_solver), test_set, eval_opts, device)
    record["eval_seconds"] = time.perf_counter() - t1
    record["outputs"] = results
    record["status"] = "ok" if not record["train"]["truncated"] else "ok (training cut short by the time budget)"
    return record


def headline(record: dict, level: str) -> dict:
    """{output: (Dice mean, std, IoU mean)} at the headline level."""
    out = {}
    for name, summary in record.get("outputs", {}).items():
        s = summary[level]
        out[name] = (s["dice"]["mean"], s["dice"]["std"], s["iou"]["mean"])
    return out


def seed_summary(record: dict, seed: int, level: str) -> dict:
    """One `per_seed` entry: the seed, each output's headline Dice and IoU means, training steps and seconds."""
    entry = {"seed": seed, "status": record["status"]}
    if record["status"].startswith("ok"):
        entry["outputs"] = {name: {"dice_mean": d, "iou_mean": j} for name, (d, _, j) in headline(record, level).items()}
        entry["train"] = {k: record["train"][k] for k in ("steps", "seconds", "cpu_seconds", "truncated")}
        entry["eval_seconds"] = record["eval_seconds"]
        if "noise_levels" in record:
            entry["noise_levels_dice"] = record["noise_levels"]["dice"]
    return entry


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def across_seeds(per_seed: list[dict]) -> dict[str, dict]:
    """{output: dice_mean, dice_std (sample std, None below 2 seeds), iou_mean, n} over the seeds that scored it."""
    out = {}
    for name in dict.fromkeys(n for entry in per_seed for n in entry.get("outputs", {})):
        scores = [entry["outputs"][name] for entry in per_seed if name in entry.get("outputs", {})]
        dice = [s["dice_mean"] for s in scores if s["dice_mean"] is not None]
        iou = [s["iou_mean"] for s in scores if s["iou_mean"] is not None]
        out[name] = {"dice_mean": _mean(dice), "dice_std": statistics.stdev(dice) if len(dice) > 1 else None,
                     "iou_mean": _mean(iou), "n": len(dice)}
    return out


def run_seeds(row: str, seeds: list[int], args, mcfg, tcfg, train_set, test_set, device, work: Path,
              deadline: float | None, level: str, per_seed_config: dict[int, dict] | None = None) -> dict:
    """run_row once per seed: the first seed's record with `seeds`, `per_seed` and `across_seeds` added.

    A later seed that fails is kept as a failed `per_seed` entry; one that no longer fits the time budget
    (judged by the first seed's duration) is skipped. `across_seeds` counts only the seeds that were scored.
    `per_seed_config` ({seed: TrainConfig fields}) gives each seed its own steps (the equal-seconds row); a seed
    it lacks is skipped.
    """
    record, per_seed, first_seconds = None, [], 0.0
    for seed in seeds:
        if per_seed_config is not None and seed not in per_seed_config:
            per_seed.append({"seed": seed, "status": "skipped: the reference row has no result for this seed"})
            continue
        remaining = None if deadline is None else deadline - time.monotonic()
        if record is not None and remaining is not None and remaining < first_seconds:
            per_seed.append({"seed": seed, "status": f"skipped: time budget ({remaining:.0f} s left, "
                                                     f"~{first_seconds:.0f} s needed)"})
            continue
        if len(seeds) > 1:
            print(f"[{row}] seed {seed}", flush=True)
        t0 = time.perf_counter()
        seed_work = work if len(seeds) == 1 else work / f"seed{seed}"
        try:
            seed_cfg = replace(tcfg, seed=seed, **(per_seed_config or {}).get(seed, {}))
            rec = run_row(row, args, mcfg, seed_cfg, train_set, test_set, device, seed_work, deadline)
        except Exception as exc:
            if record is None:
                raise
            traceback.print_exc()
            rec = {"status": f"failed: {type(exc).__name__}: {exc}"[:500]}
        if record is None:
            record, first_seconds = rec, time.perf_counter() - t0
        per_seed.append(seed_summary(rec, seed, level))
    record.update(seeds=list(seeds), per_seed=per_seed, across_seeds=across_seeds(per_seed))
    if any(e.get("train", {}).get("truncated") for e in per_seed):
        record["status"] = "ok (training cut short by the time budget)"
    return record


def equal_seconds_plan(ref: dict, args, mcfg, tcfg, base_ema: float, train_set, device) -> tuple[dict, dict]:
    """({seed: {steps, ema_rate}}, record) for the supervised U-Net given the training seconds of the row `ref`.

    Its steps are each seed's seconds of `ref` (CPU or wall, --equal-clock) divided by the supervised step's
    seconds, measured here on the same data (median of 3 rounds of 10 steps)."""
    key = "cpu_seconds" if args.equal_clock == "cpu" else "seconds"
    probe = step_seconds({"supervised": ("supervised", mcfg, tcfg)}, train_set, device, 3, 10, 3)["supervised"]
    per_step = probe["cpu_s" if args.equal_clock == "cpu" else "wall_s"]
    budgets = {e["seed"]: e["train"][key] for e in ref.get("per_seed", []) if e.get("train", {}).get("steps")}
    if not budgets:
        raise ValueError(f"--equal-seconds {ref['row']}: that row trained no seed ({ref['status']})")
    steps = {seed: max(round(b / per_step), 1) for seed, b in budgets.items()}
    plan = {seed: {"steps": n, "ema_rate": auto_ema(base_ema, n) if args.ema_rate == "auto" else float(args.ema_rate)}
            for seed, n in steps.items()}
    return plan, {"of": ref["row"], "clock": args.equal_clock, "probe_seconds_per_step": per_step,
                  "budget_seconds": budgets, "steps": steps}


def print_table(result: dict) -> None:
    level = result["level"]
    threads = f", {result['threads']} thread(s)" if "threads" in result else ""
    print(f"\n{result['data']} ({result['split']}), {LEVEL_LABEL[level]}; preset {result['preset']}, "
          f"{result['steps']} steps x batch {result['batch_size']} per row; {result['device_name']}{threads}")
    print(f"{'row':<30} {'output':<34} {'Dice':>16} {'IoU':>7} {'NFE':>5}")
    if result.get("ceiling"):
        c = result["ceiling"]
        s = next(iter(c["outputs"].values()))[level]
        print(f"{c['label']:<30} {'resolution ceiling':<34} {s['dice']['mean']:.4f} ± {s['dice']['std']:.4f} "
              f"{s['iou']['mean']:>7.4f} {'-':>5}")
    for r in result["rows"]:
        if not r["status"].startswith("ok"):
            print(f"{r['label']:<30} {r['status']}")
            continue
        for name, (d, sd, j) in headline(r, level).items():
            info = r["outputs_info"].get(name, {"desc": name, "nfe": ""})
            cell = "n/a" if d is None else f"{d:.4f} ± {sd:.4f}"
            across = r.get("across_seeds", {}).get(name, {})
            over = f"  over {across['n']} seeds: {across['dice_mean']:.4f} ± {across['dice_std']:.4f}" \
                if across.get("n", 0) > 1 else ""
            print(f"{r['label']:<30} {info['desc']:<34} {cell:>16} {'n/a' if j is None else f'{j:.4f}':>7} {info['nfe']:>5}"
                  + over)
        if "cost" in r:
            print(f"{'':<30} {cost_line(r)}")


def cost_line(record: dict) -> str:
    """'params, GFLOP per step, training seconds per step (CPU, wall), steps' of a row."""
    c = record["cost"]
    steps = sorted({e["train"]["steps"] for e in record.get("per_seed", []) if "train" in e})
    parts = [f"{c['params'] / 1e6:.3f}M params"]
    if "gflop_per_step" in c:
        parts.append(f"{c['gflop_per_step']['total']:.2f} GFLOP/step")
    if "cpu_seconds_per_step" in c:
        parts.append(f"{1e3 * c['cpu_seconds_per_step']:.1f} ms CPU ({1e3 * c['seconds_per_step']:.1f} wall)/step, "
                     f"{c['train_cpu_seconds_mean']:.1f} s CPU training")
    return "; ".join(parts + [f"{'/'.join(map(str, steps))} steps"])


def _child_argv(argv: list[str], row: str, json_path: Path) -> list[str]:
    """argv without --parallel-rows, --rows and --json, for one row written to json_path."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--parallel-rows":
            continue
        if a in ("--rows", "--json"):
            skip = True
            continue
        if a.startswith(("--rows=", "--json=")):
            continue
        out.append(a)
    return out + ["--rows", row, "--json", str(json_path), "--no-ceiling"]      # the parent scores the ceiling once


def run_parallel(args, argv: list[str]) -> int:
    """One quality.py process per row, all at once; their JSON merged into one table (rows in the asked order)."""
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="cts_quality_rows_"))
    procs = {}
    for row in rows:
        cmd = [sys.executable, str(Path(__file__).resolve()), *_child_argv(argv, row, tmp / f"{row}.json")]
        procs[row] = subprocess.Popen(cmd)
        print(f"[{row}] started (pid {procs[row].pid})", flush=True)
    codes = {row: proc.wait() for row, proc in procs.items()}
    result, merged = None, []
    for row in rows:
        path = tmp / f"{row}.json"
        part = json.loads(path.read_text()) if path.exists() else None
        rec = part["rows"][0] if part and part.get("rows") else \
            {"row": row, "label": row_label(row), "status": f"failed: exit code {codes[row]}, no result written"}
        if part and result is None:
            result = part
        merged.append(rec)
    shutil.rmtree(tmp, ignore_errors=True)
    if result is None:
        print("no row produced a result", file=sys.stderr)
        return 1
    size = model_config(args).image_size
    result["ceiling"] = ceiling_record(args, open_any(args.data, args.split, size, args.eval_limit))
    result.update(rows=merged, argv=argv, parallel_rows=True, exit_codes=codes,
                  complete=all(r["status"].startswith("ok") for r in merged),
                  note="rows trained at the same time on one device: seconds and img/s per row include the contention")
    if args.json:
        write_json_atomic(args.json, result)
    print_table(result)
    return 0 if all(c == 0 for c in codes.values()) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.parallel_rows:
        return run_parallel(args, sys.argv[1:] if argv is None else list(argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    deadline = start + args.time_budget if args.time_budget else None
    device = pick_device(args.device)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if (split_row(r)[0] not in ROWS or (split_row(r)[1] or "paper") not in RECIPES)
               and not (r == EQUAL_ROW and args.equal_seconds)]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {list(ROWS)}")
    kind = source_kind(args.data)
    level = args.level if args.level != "auto" else headline_level(kind)
    mcfg, tcfg, train_set, test_set = open_configs_and_data(args)
    size = mcfg.image_size
    if args.recipe:
        tcfg = with_recipe(tcfg, args.recipe)
    tcfg = replace(tcfg, seed=args.seeds[0], **{k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr),
                                                                   ("ct", None if args.s1 is None else replace(tcfg.ct, s1=args.s1)))
                                                if v is not None})
    tcfg = override(tcfg, args.overrides)
    warm_item_cache(train_set)
    probes, probes_eval = {}, {}
    if args.steps.startswith("auto:"):
        seconds = float(args.steps.split(":", 1)[1])
        probe_cfg = replace(tcfg, steps=1000)
        for r in rows:
            if r != EQUAL_ROW:
                probes[r] = probe_seconds(r, mcfg, probe_cfg, train_set, device)
        if args.equal_seconds:
            probes[EQUAL_ROW] = probes[args.equal_seconds]      # it takes that row's seconds
        eval_s = probe_diffusion_eval_seconds(mcfg, args, len(test_set), train_set.in_channels, device) \
            if "diffusion" in rows else 0.0
        probes_eval["diffusion"] = eval_s
        steps = auto_steps(seconds, probes, eval_s, len(args.seeds))
        print(f"auto steps: {steps} for {len(args.seeds)} seed(s) (probe s/step: "
              f"{', '.join(f'{k} {v:.4f}' for k, v in probes.items())}; "
              f"diffusion sampling on the test split ~{eval_s:.0f} s)", flush=True)
    else:
        steps = int(args.steps)
    base_ema = tcfg.ema_rate
    ema = auto_ema(base_ema, steps) if args.ema_rate == "auto" else float(args.ema_rate)
    tcfg = replace(tcfg, steps=steps, ema_rate=ema)
    info = device_info(device)
    result = {"benchmark": "quality", "tag": args.tag, **info, "data": args.data, "data_kind": kind,
              "source_spec": getattr(train_set, "source_spec", args.data), "split": args.split, "level": level,
              "level_label": LEVEL_LABEL[level], "preset": args.preset, "model_config": asdict(mcfg), "image_size": size,
              "in_channels": train_set.in_channels, "train_items": len(train_set), "test_items": len(test_set),
              "test_cases": len({test_set.meta(i)["case"] for i in range(len(test_set))}),
              "steps": steps, "batch_size": tcfg.batch_size, "lr": tcfg.lr, "optimizer": tcfg.optimizer,
              "ema_rate": ema, "seed": args.seeds[0], "seeds": args.seeds, "grid": args.grid, "train_config": asdict(tcfg),
              "probe_seconds_per_step": probes, "probe_eval_seconds": probes_eval,
              "argv": sys.argv[1:] if argv is None else list(argv), "rows": [], "complete": False,
              "ceiling": ceiling_record(args, test_set)}
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="cts_quality_"))
    durations: list[float] = []
    try:
        for row in rows:
            remaining = None if deadline is None else deadline - time.monotonic()
            estimate = (probes[row] * steps * 1.2 + probes_eval.get(row, 0) + 5) * len(args.seeds) if row in probes \
                else (min(durations) if durations else 0)
            if remaining is not None and remaining < estimate:
                result["rows"].append({"row": row, "label": row_label(row, args.equal_seconds),
                                       "status": f"skipped: time budget ({remaining:.0f} s left, ~{estimate:.0f} s needed)"})
            else:
                t0 = time.perf_counter()
                try:
                    plan, equal = None, None
                    if row == EQUAL_ROW:
                        ref = next(r for r in result["rows"] if r["row"] == args.equal_seconds)
                        plan, equal = equal_seconds_plan(ref, args, mcfg, tcfg, base_ema, train_set, device)
                        print(f"[{row}] {args.equal_clock} seconds of {ref['row']}: steps per seed {equal['steps']}",
                              flush=True)
                    else:
                        print(f"[{row}] training {steps} steps x {len(args.seeds)} seed(s) ...", flush=True)
                    record = run_seeds(row, args.seeds, args, mcfg, tcfg, train_set, test_set, device, work, deadline,
                                       level, plan)
                    if equal is not None:
                        record["equal_seconds"] = equal
                    record["cost"] = row_cost(row, record, args, mcfg, tcfg, train_set, device)
                except Exception as exc:  # a failing row must not lose the others
                    traceback.print_exc()
                    record = {"row": row, "label": row_label(row, args.equal_seconds),
                              "status": f"failed: {type(exc).__name__}: {exc}"[:500]}
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                record["seconds_total"] = time.perf_counter() - t0
                durations.append(record["seconds_total"])
                result["rows"].append(record)
                print(f"[{row}] {record['status']} in {record['seconds_total']:.1f} s", flush=True)
            if args.json:
                write_json_atomic(args.json, result)
        result["complete"] = all(r["status"].startswith("ok") for r in result["rows"])
        result["seconds"] = time.monotonic() - start
        if args.json:
            write_json_atomic(args.json, result)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose the 2-step sampler's second level tau on a validation split, from checkpoints quality.py kept.

    python benchmarks/quality.py --split val --rows cts_m@anchored --seeds 0,1,2 --work-dir runs/val ...
    python benchmarks/level_sweep.py --data ddti:PATH --work-dir runs/val --json benchmarks/results/level_sweep_ddti_val.json

Every `ckpt.pt` under --work-dir (one per row and seed) is scored with the one-step sampler and
with the 2-step sampler (CM multistep: one step from sigma_max, re-noise to tau, denoise again) at
each tau of --levels, on --split, with the evaluation protocol's headline level (per patient for
LGG and BraTS, per image otherwise). The JSON holds each checkpoint's Dice per tau, the mean over
checkpoints and the tau with the best mean; the test split is never read.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.packed import open_any, source_kind  # noqa: E402
from ctslib.checkpoint import build_model_from_checkpoint  # noqa: E402
from ctslib.cli import HELP_FMT  # noqa: E402
from ctslib.evaluate import EvalOptions, evaluate, headline_level, multistep_sweep  # noqa: E402
from ctslib.io_utils import write_json_atomic  # noqa: E402


def sweep_checkpoint(ckpt: Path, dataset, levels: list[float], level_key: str, seed: int) -> dict:
    """{"one_step": Dice, "multistep": {tau: Dice}} of one checkpoint's EMA weights."""
    model, info = build_model_from_checkpoint(ckpt, "ema", map_location="cpu")
    encoding = info["train_cfg"].mask_encoding
    one = evaluate(model, dataset, encoding, EvalOptions(outputs=("one_step",), seed=seed, hd95=False, n_bootstrap=0,
                                                         progress=False), "cpu")
    sweep = multistep_sweep(model, dataset, levels, encoding, level_key, seed=seed, device="cpu")
    return {"one_step": one["one_step"][level_key]["dice"]["mean"],
            "multistep": {str(tau): r["dice"] for tau, r in sweep.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--data", required=True, help="dataset spec the checkpoints were trained on")
    p.add_argument("--work-dir", required=True, help="quality.py --work-dir holding the checkpoints")
    p.add_argument("--split", default="val", help="split to choose on (never the test split)")
    p.add_argument("--levels", default="0.05,0.1,0.2,0.4,0.8,2.0", help="candidate second levels tau")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", default=None, help="write the sweep here")
    args = p.parse_args(argv)
    if args.split == "test":
        p.error("choose tau on a validation split, not on the test split")
    torch.set_num_threads(args.threads)
    levels = [float(x) for x in args.levels.split(",") if x.strip()]
    ckpts = sorted(Path(args.work_dir).glob("**/ckpt.pt"))
    if not ckpts:
        p.error(f"no ckpt.pt under {args.work_dir}")
    t0 = time.perf_counter()
    size = build_model_from_checkpoint(ckpts[0])[0].cfg.image_size
    dataset = open_any(args.data, args.split, size)
    key = headline_level(source_kind(args.data))
    rows = {}
    for ckpt in ckpts:
        rows[str(ckpt.relative_to(args.work_dir))] = row = sweep_checkpoint(ckpt, dataset, levels, key, args.seed)
        print(ckpt, f"one-step {100 * row['one_step']:.2f}",
              {t: round(100 * d, 2) for t, d in row["multistep"].items()}, flush=True)
    mean = {str(t): statistics.mean(r["multistep"][str(t)] for r in rows.values()) for t in levels}
    best = max(mean, key=mean.get)
    result = {"benchmark": "level_sweep", "data": args.data, "split": args.split, "level": key, "threads": args.threads,
              "device": "cpu", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
              "one_step_mean": statistics.mean(r["one_step"] for r in rows.values()), "multistep_mean": mean,
              "best_tau": float(best), "checkpoints": rows, "seconds": time.perf_counter() - t0}
    print(f"one-step mean {100 * result['one_step_mean']:.2f}; 2-step mean per tau",
          {t: round(100 * d, 2) for t, d in mean.items()}, f"-> tau = {best}")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

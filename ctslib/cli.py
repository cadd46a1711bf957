"""Command line: python -m ctslib {info,train,evaluate,predict,reproduce} --help."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

class HELP_FMT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: ...)" once: not on flags whose help already says what their default is."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if "default:" in text or "default)" in text.replace("(default)", "") else super()._get_help_string(action)


def _add_info(sub):
    p = sub.add_parser("info", help="print a preset's parameter counts", formatter_class=HELP_FMT)
    p.add_argument("--preset", default="tiny64", help="preset name (test32, tiny64, small128, paper256, released256)")
    p.add_argument("--variant", default=None, help="cts_nm, cts_m or cts_fm (default: the preset's)")
    p.add_argument("--in-channels", type=int, default=None, help="image channels C_img (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    from .config import preset
    from .model import CTSModel, count_parameters
    cfg = preset(args.preset, args.variant, args.in_channels)[0]
    counts = count_parameters(CTSModel(cfg))
    info = {"preset": args.preset, "variant": cfg.variant, "image_size": cfg.image_size, "in_channels": cfg.in_channels,
            "signal_fusion": cfg.fusion, **counts}
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:<14} {v:,}" if isinstance(v, int) else f"{k:<14} {v}")
    return 0


def _add_train(sub):
    from .config import FUSIONS
    from .data.spec import spec_usage
    p = sub.add_parser("train", help="train a CTS model", formatter_class=HELP_FMT)
    p.add_argument("--preset", default="tiny64", help="model/training preset")
    p.add_argument("--variant", default="cts_m", help="cts_nm, cts_m or cts_fm")
    p.add_argument("--data", default="phantom", help=f"dataset spec: {spec_usage()}")
    p.add_argument("--split", default="train", help="training split")
    p.add_argument("--val-split", default="val", help="validation split of the same spec ('' to skip validation)")
    p.add_argument("--out", default="runs/default", help="output folder (checkpoints, log.jsonl)")
    p.add_argument("--steps", type=int, default=None, help="training iterations (and schedule length K unless --schedule-steps)")
    p.add_argument("--schedule-steps", type=int, default=None, help="K of the N(k)/mu(k) schedules if different from --steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--objective", choices=["ct", "ict", "ect"], default=None, help="training objective (default: preset)")
    p.add_argument("--recipe", choices=["paper", "anchored"], default=None,
                   help="training recipe: paper = CT as the paper writes it, anchored = CT + anchor term (default: preset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="set any TrainConfig field, nested ones dotted, e.g. --set anchor.weight=2 --set anchor.sigma_max_share=0.25 "
                        "(repeatable; the flat names of earlier versions, anchor=2, still work)")
    p.add_argument("--optimizer", choices=["adamw", "radam"], default=None, help="optimiser (paper: adamw)")
    p.add_argument("--alpha", type=float, default=None, help="weight of the auxiliary loss L_S")
    p.add_argument("--fusion", choices=FUSIONS, default=None, help="signal fusion")
    p.add_argument("--released", action="store_true", help="authors'-code parity mode (docs/departures.md)")
    p.add_argument("--in-channels", type=int, default=None, help="override C_img (default: from the dataset)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many training items")
    p.add_argument("--val-limit", type=int, default=64, help="validation items scored at each evaluation")
    p.add_argument("--augment", action="store_true", help="random flips and small rotations (training only)")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik anisotropic diffusion preprocessing")
    p.add_argument("--log-every", type=int, default=10, help="JSONL log interval (steps)")
    p.add_argument("--eval-every", type=int, default=100, help="validation interval (steps); 0 = off")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint interval (steps)")
    p.add_argument("--snapshot-every", type=int, default=0, help="keep EMA snapshots every n steps (convergence plots)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true", help="torch.compile the online and teacher networks (slow first step; faster after)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="memory format (default: channels_last wherever this torch's GroupNorm keeps it)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def configs_from_args(args, in_channels: int | None):
    """Preset + CLI overrides -> (ModelConfig, TrainConfig); ``in_channels`` None keeps the preset's."""
    from .config import override, preset, released_mode, with_recipe
    mcfg, tcfg = preset(args.preset, args.variant, in_channels)
    if args.recipe:
        tcfg = with_recipe(tcfg, args.recipe)
    if args.released:
        mcfg, tcfg = released_mode(mcfg, tcfg)
    if args.fusion:
        mcfg = replace(mcfg, fusion=args.fusion)
    over = {k: v for k, v in dict(batch_size=args.batch_size, lr=args.lr, objective=args.objective,
                                  optimizer=args.optimizer, alpha=args.alpha, seed=args.seed).items() if v is not None}
    if args.steps is not None:
        over["steps"] = args.schedule_steps or args.steps
    elif args.schedule_steps is not None:
        over["steps"] = args.schedule_steps
    return mcfg, override(replace(tcfg, **over), getattr(args, "overrides", []))


def cmd_train(args) -> int:
    from .data import DiffusionConfig, open_dataset
    from .train import RunOptions, train
    mcfg, tcfg = configs_from_args(args, args.in_channels)       # one preset lookup: the size, then the channels
    diffusion = DiffusionConfig() if args.anisotropic else None
    train_set = open_dataset(args.data, args.split, mcfg.image_size, augment=args.augment, diffusion=diffusion,
                             seed=args.seed, limit=args.limit)
    val_set = open_dataset(args.data, args.val_split, mcfg.image_size, diffusion=diffusion,
                           seed=args.seed) if args.val_split else None
    mcfg = replace(mcfg, in_channels=args.in_channels or train_set.in_channels)
    run = RunOptions(out=args.out, max_steps=args.steps, log_every=args.log_every, eval_every=args.eval_every,
                     ckpt_every=args.ckpt_every, snapshot_every=args.snapshot_every, val_limit=args.val_limit,
                     device=args.device, compile=args.compile, channels_last=args.channels_last, num_workers=args.num_workers, resume=args.resume,
                     progress=not args.no_progress)
    result = train(mcfg, tcfg, train_set, val_set, run, data_spec=args.data)
    print(json.dumps({k: v for k, v in result.items() if k != "last"}))
    return 0


def _add_evaluate(sub):
    from .evaluate import DEFAULT_LEVELS
    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset split", formatter_class=HELP_FMT)
    p.add_argument("--ckpt", required=True, help="checkpoint (OUT/ckpt.pt), EMA snapshot, or a pretrained name (e.g. lgg-tiny64)")
    p.add_argument("--data", default=None, help="dataset spec (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="test", help="split to score")
    p.add_argument("--weights", choices=["ema", "model"], default="ema", help="EMA (default) or online weights")
    p.add_argument("--outputs", default="one_step,multistep,ensemble,aux_head", help="comma-separated outputs to score")
    p.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="multistep levels after sigma_max, comma-separated (choose on val)")
    p.add_argument("--members", type=int, default=5, help="ensemble size E")
    p.add_argument("--limit", type=int, default=None, help="score at most this many items")
    p.add_argument("--batch-size", type=int, default=16, help="evaluation batch size")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik preprocessing (use if trained with it)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--grid", choices=["native", "model"], default="native",
                   help="score on the files' own grid (predictions mapped back, docs/evaluation.md) or at the "
                        "model's resolution")
    p.add_argument("--json", default=None, help="write the full results to this JSON file")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (minutes to compile; pays off "
                                                          "on a large split)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from .data import DiffusionConfig, open_dataset
    from .device import describe, pick_device
    from .evaluate import EvalOptions, evaluate, format_table
    from .checkpoint import build_model_from_checkpoint
    device = pick_device(args.device)
    model, info = build_model_from_checkpoint(args.ckpt, args.weights, map_location="cpu")
    model.to(device)
    if args.compile:
        model.compile()
    spec = args.data or info["data"] or "phantom"
    ds = open_dataset(spec, args.split, model.cfg.image_size, diffusion=DiffusionConfig() if args.anisotropic else None)
    levels = tuple(float(x) for x in args.levels.split(",") if x.strip())
    opts = EvalOptions(outputs=tuple(o.strip() for o in args.outputs.split(",")), levels=levels, members=args.members,
                       batch_size=args.batch_size, limit=args.limit, seed=args.seed, grid=args.grid)
    results = evaluate(model, ds, info["train_cfg"].mask_encoding, opts, device)
    print(format_table(results))
    if args.json:
        from .io_utils import write_json_atomic
        write_json_atomic(args.json, {"checkpoint": str(args.ckpt), "step": info["step"], "weights": args.weights,
                                      "data": spec, "split": args.split, "levels": list(levels), "members": args.members,
                                      "grid": next(iter(results.values()))["grid"] if results else args.grid,
                                      "device": describe(device), **results})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ctslib", description=__doc__, formatter_class=HELP_FMT)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_info(sub)
    _add_train(sub)
    _add_evaluate(sub)
    from . import predict, reproduce
    predict.add_parser(sub)
    reproduce.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:   # bad input (DataError is a ValueError): a message, no traceback
        if os.environ.get("CTS_DEBUG"):
            raise
        print(f"ctslib: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`python -m ctslib train`: train (or resume) a CTS model on a dataset spec."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from .common import (HELP_FMT, channel_count, check_output_folder, device_name, nonnegative_float, nonnegative_int,
                     positive_float, positive_int, seed_int, worker_count)


def add_parser(sub):
    from ..config import FUSIONS, PRESETS, VARIANTS
    from ..data.spec import spec_usage
    p = sub.add_parser("train", help="train a CTS model", formatter_class=HELP_FMT)
    p.add_argument("--preset", default="tiny64", choices=sorted(PRESETS), help="model/training preset")
    p.add_argument("--variant", default="cts_m", choices=VARIANTS, help="CTS variant")
    p.add_argument("--data", default="phantom", help=f"dataset spec: {spec_usage()}")
    p.add_argument("--split", default="train", help="training split")
    p.add_argument("--val-split", default="val", help="validation split of the same spec ('' to skip validation)")
    p.add_argument("--out", default="runs/default", help="output folder (checkpoints, log.jsonl); a folder that "
                                                          "holds a run needs --resume or --force")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training iterations (and schedule length K unless --schedule-steps)")
    p.add_argument("--schedule-steps", type=positive_int, default=None,
                   help="K of the N(k)/mu(k) schedules if different from --steps")
    p.add_argument("--batch-size", type=positive_int, default=None, help="global batch size (default: the preset's)")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--objective", choices=["ct", "ict", "ect"], default=None, help="training objective (default: preset)")
    p.add_argument("--recipe", choices=["paper", "anchored"], default=None,
                   help="training recipe: paper = CT as the paper writes it, anchored = CT + anchor term (default: preset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="set any TrainConfig field, nested ones dotted, e.g. --set anchor.weight=2 "
                        "--set anchor.sigma_max_share=0.25 (repeatable; the flat names of earlier versions, anchor=2, "
                        "still work)")
    p.add_argument("--optimizer", choices=["adamw", "radam"], default=None, help="optimiser (paper: adamw)")
    p.add_argument("--alpha", type=nonnegative_float, default=None, help="weight of the auxiliary loss L_S")
    p.add_argument("--fusion", choices=FUSIONS, default=None, help="signal fusion")
    p.add_argument("--released", action="store_true", help="authors'-code parity mode (docs/departures.md)")
    p.add_argument("--in-channels", type=channel_count, default=None, help="override C_img (default: from the dataset)")
    p.add_argument("--limit", type=positive_int, default=None, help="use at most this many training items")
    p.add_argument("--val-limit", type=positive_int, default=64, help="validation items scored at each evaluation")
    p.add_argument("--augment", action="store_true", help="random flips and small rotations (training only)")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik anisotropic diffusion preprocessing")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="refuse pictures with more pixels than this (default: ctslib.data.readers.MAX_PIXELS)")
    p.add_argument("--log-every", type=positive_int, default=10, help="JSONL log interval (steps)")
    p.add_argument("--eval-every", type=nonnegative_int, default=100, help="validation interval (steps); 0 = off")
    p.add_argument("--ckpt-every", type=positive_int, default=100, help="checkpoint interval (steps)")
    p.add_argument("--snapshot-every", type=nonnegative_int, default=0,
                   help="keep EMA snapshots every n steps (convergence plots); 0 = off")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true", help="torch.compile the online and teacher networks (slow first step; faster after)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="memory format (default: channels_last wherever this torch's GroupNorm keeps it)")
    p.add_argument("--num-workers", type=worker_count, default=0, help="DataLoader workers")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in OUT (needs OUT/ckpt.pt)")
    group.add_argument("--force", action="store_true", help="replace the run in OUT (its ckpt.pt, log.jsonl and "
                                                            "snapshots are deleted when training starts)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)
    return p


def configs_from_args(args, in_channels: int | None):
    """Preset + CLI overrides -> (ModelConfig, TrainConfig); ``in_channels`` None keeps the preset's."""
    from ..config import override, preset, released_mode, with_recipe
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


def saved_state(out) -> str:
    """What an interrupted run left: 'the checkpoint OUT/ckpt.pt (step N) is kept' or that none was written."""
    from pathlib import Path

    from ..checkpoint import load_checkpoint
    from ..run_folder import CHECKPOINT
    ckpt = Path(out) / CHECKPOINT
    if not ckpt.is_file():
        return "no checkpoint was written yet"
    try:
        return f"the checkpoint {ckpt} (step {load_checkpoint(ckpt).get('step', '?')}) is kept"
    except ValueError:
        return f"{ckpt} is kept"


def cmd_train(args) -> int:
    from ..data import DiffusionConfig, open_dataset
    from ..data.readers import pixel_limit
    from ..run_folder import check_run_folder
    from ..train import RunOptions, train
    check_output_folder(args.out)
    check_run_folder(args.out, args.resume, args.force)            # before any work: nothing to lose, nothing to do
    mcfg, tcfg = configs_from_args(args, args.in_channels)       # one preset lookup: the size, then the channels
    diffusion = DiffusionConfig() if args.anisotropic else None
    with pixel_limit(args.max_pixels):
        train_set = open_dataset(args.data, args.split, mcfg.image_size, augment=args.augment, diffusion=diffusion,
                                 seed=args.seed, limit=args.limit)
        val_set = open_dataset(args.data, args.val_split, mcfg.image_size, diffusion=diffusion,
                               seed=args.seed) if args.val_split else None
        mcfg = replace(mcfg, in_channels=args.in_channels or train_set.in_channels)
        run = RunOptions(out=args.out, max_steps=args.steps, log_every=args.log_every, eval_every=args.eval_every,
                         ckpt_every=args.ckpt_every, snapshot_every=args.snapshot_every, val_limit=args.val_limit,
                         device=args.device, compile=args.compile, channels_last=args.channels_last,
                         num_workers=args.num_workers, resume=args.resume, force=args.force,
                         progress=not args.no_progress)
        try:
            result = train(mcfg, tcfg, train_set, val_set, run, data_spec=args.data)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; {saved_state(args.out)}") from None
    print(json.dumps({k: v for k, v in result.items() if k != "last"}))
    return 0

"""`python -m ctslib evaluate`: score a checkpoint on a dataset split."""
from __future__ import annotations

from .common import (HELP_FMT, UsageError, check_output_file, choice_list, device_name, noise_levels, positive_int,
                     seed_int)


def add_parser(sub):
    from ..evaluate import DEFAULT_LEVELS, GRIDS, OUTPUTS
    p = sub.add_parser("evaluate", help="score a checkpoint on a dataset split", formatter_class=HELP_FMT)
    p.add_argument("--ckpt", required=True, help="checkpoint (OUT/ckpt.pt), EMA snapshot, or a pretrained name (e.g. lgg-tiny64)")
    p.add_argument("--data", default=None, help="dataset spec (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="test", help="split to score")
    p.add_argument("--weights", choices=["ema", "model"], default="ema", help="EMA (default) or online weights")
    p.add_argument("--outputs", type=choice_list(OUTPUTS, "output"), default=",".join(OUTPUTS),
                   help="comma-separated outputs to score")
    p.add_argument("--levels", type=noise_levels, default=",".join(map(str, DEFAULT_LEVELS)),
                   help="multistep levels after sigma_max, comma-separated (choose on val)")
    p.add_argument("--members", type=positive_int, default=5, help="ensemble size E")
    p.add_argument("--limit", type=positive_int, default=None, help="score at most this many items")
    p.add_argument("--batch-size", type=positive_int, default=16, help="evaluation batch size")
    p.add_argument("--anisotropic", action="store_true", help="Perona-Malik preprocessing (use if trained with it)")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="refuse pictures with more pixels than this (default: ctslib.data.readers.MAX_PIXELS)")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed")
    p.add_argument("--grid", choices=GRIDS, default="native",
                   help="score on the files' own grid (predictions mapped back, docs/evaluation.md) or at the "
                        "model's resolution")
    p.add_argument("--hd95-convention", choices=["medpy", "monai"], default="medpy",
                   help="HD95 of pooled surface distances (medpy) or the larger directed one (monai; docs/evaluation.md)")
    p.add_argument("--json", default=None, help="write the full results to this JSON file (checked before scoring)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (minutes to compile; pays off "
                                                          "on a large split)")
    p.set_defaults(func=cmd_evaluate)
    return p


def check_default_data(spec: str, ckpt) -> None:
    """The checkpoint's own data spec without a path needs its data under the data root; say how to give it."""
    from ..data.spec import DEFAULT_FOLDERS, default_data_root, parse_spec
    kind = parse_spec(spec).kind
    if ":" not in spec.partition("?")[0] and kind in DEFAULT_FOLDERS:
        folder = default_data_root() / DEFAULT_FOLDERS[kind]
        if not folder.exists():
            raise UsageError(f"{ckpt} was trained on {spec!r}, whose default folder {folder} does not exist; pass "
                             f"--data {kind}:PATH or set CTS_DATA_ROOT to the folder that holds {DEFAULT_FOLDERS[kind]}/")


def cmd_evaluate(args) -> int:
    from ..data import DiffusionConfig, open_dataset
    from ..data.readers import pixel_limit
    from ..device import describe, pick_device
    from ..evaluate import EvalOptions, evaluate, format_table
    from ..io_utils import write_json_atomic
    from ..pretrained import load_model
    if args.json is not None:
        check_output_file(args.json, "--json", force=args.force)
    if "multistep" in args.outputs and not args.levels:
        raise UsageError("--outputs multistep needs at least one level (--levels 0.05, chosen on val)")
    device = pick_device(args.device)
    model, info = load_model(args.ckpt, args.weights, map_location="cpu")
    model.to(device)
    if args.compile:
        model.compile()
    spec = args.data or info["data"] or "phantom"
    if not args.data:
        check_default_data(spec, args.ckpt)
    with pixel_limit(args.max_pixels):
        ds = open_dataset(spec, args.split, model.cfg.image_size,
                          diffusion=DiffusionConfig() if args.anisotropic else None)
        opts = EvalOptions(outputs=args.outputs, levels=args.levels, members=args.members, batch_size=args.batch_size,
                           limit=args.limit, seed=args.seed, grid=args.grid, hd95_convention=args.hd95_convention)
        results = evaluate(model, ds, info["train_cfg"].mask_encoding, opts, device)
    print(format_table(results))
    if args.json:
        write_json_atomic(args.json, {"checkpoint": str(args.ckpt), "step": info["step"], "weights": args.weights,
                                      "data": spec, "split": args.split, "levels": list(args.levels),
                                      "members": args.members,
                                      "grid": next(iter(results.values()))["grid"] if results else args.grid,
                                      "device": describe(device), **results})
    return 0

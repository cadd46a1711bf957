"""`python -m ctslib info`: a preset's parameter counts."""
from __future__ import annotations

import json

from .common import HELP_FMT, channel_count


def add_parser(sub):
    from ..config import PRESETS, VARIANTS
    p = sub.add_parser("info", help="print a preset's parameter counts", formatter_class=HELP_FMT)
    p.add_argument("--preset", default="tiny64", choices=sorted(PRESETS), help="preset name")
    p.add_argument("--variant", default=None, choices=VARIANTS, help="CTS variant (default: the preset's)")
    p.add_argument("--in-channels", type=channel_count, default=None, help="image channels C_img (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)
    return p


def cmd_info(args) -> int:
    from ..config import preset
    from ..model import CTSModel, count_parameters
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

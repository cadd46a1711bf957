"""Pack preprocessed dataset splits into one .npz for a machine without the data folder (the GPU box).

    python benchmarks/pack_data.py --data lgg --size 128 --out gpu_pack/lgg128.npz     # ~39 MB, ~3 min
    python benchmarks/pack_data.py --data ddti --size 128 --out gpu_pack/ddti128.npz   # ~6 MB

Items go through ctslib.data exactly as in training (z-scored, resized, masks exactly binary); images are
stored as uint8 with a per-item, per-channel affine, masks as bits, everything xz-compressed
(benchmarks/packed.py). Read it back with `--data packed:gpu_pack/lgg128.npz` in benchmarks/quality.py
or with benchmarks.packed.PackedDataset.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.cli import HELP_FMT  # noqa: E402
from benchmarks.packed import pack_splits  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--data", required=True, help="dataset spec: lgg, ddti, phantom, lgg:PATH, ...")
    p.add_argument("--size", type=int, required=True, help="image size in pixels (the preset's: small128 -> 128)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits to pack")
    p.add_argument("--limit", type=int, default=None, help="at most this many items per split (whole cases first)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--max-mb", type=float, default=None, help="fail if the file is larger than this")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    meta = pack_splits(args.data, args.size, [s.strip() for s in args.splits.split(",") if s.strip()], args.out,
                       limit=args.limit, progress=True)
    mb = meta["bytes"] / 1e6
    print(json.dumps({k: v for k, v in meta.items() if k != "arrays"}, indent=1))
    print(f"wrote {args.out}: {mb:.1f} MB in {time.perf_counter() - t0:.0f} s")
    if args.max_mb is not None and mb > args.max_mb:
        print(f"error: {args.out} is {mb:.1f} MB, over --max-mb {args.max_mb}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

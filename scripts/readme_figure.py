"""Draw docs/figures/one_step.png, the README's picture of what CTS does, from a shipped checkpoint.

    python scripts/readme_figure.py

Two DDTI test crops of the in-repo sample (data/sample), the pretrained `ddti-tiny64` CTS-M, one network
evaluation each: the image, the noise it starts from, the consistency function's output, and the mask
against the expert's. Runs in seconds on a CPU; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from ctslib.cli import HELP_FMT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--out", default=str(ROOT / "docs" / "figures" / "one_step.png"), help="PNG to write")
    p.add_argument("--items", default="0,2", help="comma-separated indices of DDTI test crops")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import torch

    import ctslib
    from ctslib import figures
    from ctslib.data import open_dataset, sample_data_root
    torch.manual_seed(0)
    model, _ = ctslib.load_pretrained("ddti-tiny64", "cpu")
    test = open_dataset(f"ddti:{sample_data_root() / 'ddti'}", "test", model.cfg.image_size)
    picks = [int(i) for i in args.items.split(",")]
    images = torch.stack([test[i][0] for i in picks])
    masks = torch.stack([test[i][1] for i in picks])
    figures.plot_one_step_story(model.eval(), images, masks, save=args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

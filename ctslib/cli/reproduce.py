"""`python -m ctslib reproduce`: execute the tutorial notebooks headlessly (ctslib.reproduce) and summarise them."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from .common import HELP_FMT, RuntimeFailure, UsageError, check_output_folder, device_name, positive_int


def add_parser(subparsers):
    from ..data.roots import SAMPLE
    from ..data.spec import spec_usage
    from ..reproduce import NOTEBOOK_DIR
    from ..tutorial import PROFILES
    p = subparsers.add_parser(
        "reproduce", help="execute the tutorial notebooks headlessly and summarise their results",
        description="Execute notebooks/NN_*.ipynb in order with papermill, injecting the parameters; write the "
                    "executed notebooks, figures and summary.md/summary.json to OUT; stop at the first failure.",
        formatter_class=HELP_FMT)
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: minutes on a 2-core CPU (illustrative numbers); full: the presets' real length (GPU)")
    p.add_argument("--data", default=SAMPLE,
                   help=f"dataset spec for training: sample (the in-repo real DDTI sample), {spec_usage()}, or a "
                        "data root folder such as $CTS_DATA_ROOT (trains on its DDTI set)")
    p.add_argument("--out", default="runs/reproduce", help="output folder (notebooks/, figures/, results/, summary.*)")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N (injected as DEVICE)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps of every run (03, each 04 variant, 05/06 fallbacks); unset: the profile's choice")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    p.add_argument("--notebooks", default=str(NOTEBOOK_DIR), help="folder of the numbered notebooks (also the cwd)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    p.add_argument("--timeout", type=positive_int, default=3600, help="per-cell execution timeout in seconds")
    p.add_argument("--cell-progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show papermill's per-cell progress bar")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' own output to the terminal")
    p.add_argument("--update-notebooks", action="store_true",
                   help="write each executed notebook's outputs back into its file under --notebooks, stamped with "
                        "hashes of its cells, ctslib and data/sample (quick profile on the sample only)")
    p.set_defaults(func=cmd_reproduce)
    return p


def cmd_reproduce(args) -> int:
    if importlib.util.find_spec("papermill") is None:
        raise UsageError("reproduce needs papermill: pip install -e '.[notebooks]'")
    from ..data.roots import absolute_data
    from ..reproduce import discover, run_notebooks
    if not Path(args.notebooks).is_dir():
        raise UsageError(f"--notebooks {args.notebooks} is not a folder")
    notebooks = discover(args.notebooks, args.only)
    if not notebooks:
        raise UsageError(f"no notebooks NN_*.ipynb matching {args.only or '*'} in {args.notebooks}")
    from ..notebook_outputs import update_refusal
    refusal = update_refusal(args.profile, args.data) if args.update_notebooks else None
    if refusal:
        raise UsageError(refusal)
    out = check_output_folder(args.out).resolve()
    values = {"PROFILE": args.profile, "DATA": absolute_data(args.data), "OUT": str(out), "DEVICE": args.device}
    if args.steps is not None:
        values["STEPS"] = args.steps
    runs = run_notebooks(notebooks, out, values, kernel=args.kernel, cwd=args.notebooks, timeout=args.timeout,
                         cell_progress=args.cell_progress, log_output=args.log_output,
                         update_notebooks=args.update_notebooks)
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        print(f"\n{failed[0]['error']}", file=sys.stderr)
        raise RuntimeFailure(f"notebook {failed[0]['name']} failed (executed copy with the error: {failed[0]['executed']}); "
                           f"stopped there; summary: {out / 'summary.md'}")
    print(f"{len(runs)} notebooks ok; summary: {out / 'summary.md'}")
    return 0

"""Time the tutorial's quick profile, notebook by notebook, and write the JSON the README's tutorial map reads.

    python benchmarks/tutorial_timing.py                     # runs reproduce --profile quick into a temporary folder
    python benchmarks/readme_results.py                      # then the README's minutes come from the JSON

Runs `python -m ctslib reproduce --profile quick --only NN` for each numbered notebook in order, into one
run folder (so later notebooks reuse the earlier ones' runs, as in a full run). Every notebook uses one
torch thread in that profile. Records per notebook the wall seconds (from reproduce's summary.json) and the
CPU seconds (user + sys of the kernel and the runner, from getrusage): with one thread, the CPU time is what
the wall time comes to on an idle machine, while the wall time of a shared machine includes waiting for other
jobs. Also records the CPU model, cores, torch and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ctslib.cli import HELP_FMT  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--out", default=None, help="run folder for reproduce (default: a temporary folder, removed after)")
    p.add_argument("--data", default="sample", help="dataset spec passed to reproduce")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tutorial_quick_cpu.json"),
                   help="where to write the timings")
    args = p.parse_args(argv)
    import resource

    import torch
    from ctslib.reproduce import discover
    wall, cpu = {}, {}
    with tempfile.TemporaryDirectory(prefix="cts-timing-") as tmp:
        out = Path(args.out or tmp)
        load_before = os.getloadavg()[0]
        for nb in discover():
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run([sys.executable, "-m", "ctslib", "reproduce", "--profile", "quick", "--data", args.data,
                                   "--only", nb.stem, "--out", str(out), "--no-cell-progress"], cwd=ROOT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            summary = json.loads((out / "summary.json").read_text())
            if proc.returncode != 0 or summary["status"] != "ok":
                print(f"reproduce failed on {nb.stem} (exit {proc.returncode}); nothing written", file=sys.stderr)
                return 1
            wall[nb.stem] = round(summary["notebooks"][0]["seconds"], 1)
            cpu[nb.stem] = round(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime, 1)
        load_after = os.getloadavg()[0]
    record = {"benchmark": "tutorial", "profile": "quick", "data": args.data, "cpu_seconds": cpu,
              "wall_seconds": wall, "total_seconds": round(sum(cpu.values()), 1), "total_wall_seconds": round(sum(wall.values()), 1),
              "cpu": cpu_name(), "cores": os.cpu_count(), "threads": 1, "torch": torch.__version__,
              "load_before": round(load_before, 2), "load_after": round(load_after, 2), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of one training step: parameters, GFLOP and seconds (CPU time and wall time) per row and network size.

    python benchmarks/cost.py --data lgg:PATH --preset test32 --threads 1 \\
        --config g16: --config g8:denoiser.base=8 --config g8h:denoiser.base=8,denoiser.downscale=2

Each `--config NAME:FIELD=VALUE,...` is a ModelConfig (the preset's with those `--model-set` style
overrides) whose CTS row (`--row`, default cts_m) is measured beside the supervised U-Net of the same
preset. A training step is what `ctslib.train.fit` does per iteration: a batch from the data loader,
the row's loss, backward, optimiser step. GFLOP come from `torch.utils.flop_counter.FlopCounterMode`
on one real step (convolutions, matmuls and attention; norms, pointwise ops and the optimiser are not
counted); for CTS they are split into the online forward+backward of g (with the fusion and the loss),
the online forward+backward of h, and the teacher's forward (its g and h). Seconds are the median over
`--repeats` rounds of `--steps` steps after warm-up; the rows are measured in turn within each round,
so that a machine shared with other jobs slows them alike. CPU seconds (`time.process_time`, all threads
of this process) are the compute; wall seconds are what a user waits.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.measure import device_info, sync  # noqa: E402
from benchmarks.packed import open_any  # noqa: E402
from ctslib.baselines import EDMDenoiser, EDMLoss, SupervisedLoss, SupervisedUNet  # noqa: E402
from ctslib.cli import HELP_FMT  # noqa: E402
from ctslib.config import override, preset, with_variant  # noqa: E402
from ctslib.device import autocast, pick_device  # noqa: E402
from ctslib.io_utils import write_json_atomic  # noqa: E402
from ctslib.losses import ConsistencyLoss  # noqa: E402
from ctslib.model import CTSModel  # noqa: E402
from ctslib.targets import make_copy  # noqa: E402
from ctslib.train import StepBatchSampler, build_optimizer  # noqa: E402


def batches(dataset, batch_size: int, seed: int, n: int, device):
    """n training batches (image, mask) on the device, drawn as `fit` draws them."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed, 0, n)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    for image, mask, _ in loader:
        yield image.to(device), mask.to(device)


def row_network(row: str, mcfg) -> torch.nn.Module:
    """The network a quality row trains: CTSModel (cts_*), SupervisedUNet (supervised*) or EDMDenoiser (diffusion)."""
    if row.startswith("cts"):
        return CTSModel(with_variant(mcfg, row.partition("@")[0]))
    if row.startswith("supervised"):
        return SupervisedUNet(mcfg)
    return EDMDenoiser(mcfg)


def row_loss(row: str, model, mcfg, tcfg, device):
    """loss(image, mask, step, generator) -> (loss, logs) of a row; CTS rows get a teacher copy of `model`."""
    if row.startswith("cts"):
        teacher, ct = make_copy(model), ConsistencyLoss(model.cfg, tcfg)
        loss_fn = lambda m, x, y, k, g: ct(m, teacher, x, y, k, g)  # noqa: E731
    else:
        loss_fn = SupervisedLoss() if row.startswith("supervised") else EDMLoss(mcfg, tcfg)

    def run(x, y, k, g):
        with autocast(device):                   # as train.fit: the whole loss under autocast
            return loss_fn(model, x, y, k, g)
    return run


def parameters(row: str, mcfg) -> int:
    return sum(p.numel() for p in row_network(row, mcfg).parameters())


class StepTimer:
    """One row's training steps on real batches, timed in CPU and wall seconds."""

    def __init__(self, row: str, mcfg, tcfg, dataset, device, total_steps: int):
        torch.manual_seed(0)
        self.device = device
        self.model = row_network(row, mcfg).to(device)
        self.loss = row_loss(row, self.model, mcfg, tcfg, device)
        self.opt = build_optimizer(self.model, tcfg)
        self.data = batches(dataset, tcfg.batch_size, tcfg.seed, total_steps, device)
        self.k = 0

    def step(self) -> None:
        image, mask = next(self.data)
        loss, _ = self.loss(image, mask, self.k, torch.Generator().manual_seed(self.k))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.k += 1

    def timed(self, n: int) -> tuple[float, float]:
        """(CPU seconds, wall seconds) per step over n steps."""
        sync(self.device)
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            self.step()
        sync(self.device)
        return (time.process_time() - c0) / n, (time.perf_counter() - w0) / n


def step_seconds(rows: dict, dataset, device, warmup: int = 3, n: int = 8, repeats: int = 1) -> dict[str, dict]:
    """{name: {"cpu_s", "wall_s"}} per training step for {name: (row, mcfg, tcfg)}, medians over `repeats` rounds
    in which every row runs n steps in turn (after `warmup` steps each)."""
    timers = {name: StepTimer(row, mcfg, tcfg, dataset, device, warmup + n * repeats)
              for name, (row, mcfg, tcfg) in rows.items()}
    _, _, first = next(iter(rows.values()))
    for _ in batches(dataset, first.batch_size, first.seed, warmup + n * repeats, device):
        pass                # fills the data set's item cache, so that no row pays for the first decoding
    for timer in timers.values():
        for _ in range(warmup):
            timer.step()
    samples: dict[str, list] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():
            samples[name].append(timer.timed(n))
    return {name: {"cpu_s": statistics.median(c for c, _ in s), "wall_s": statistics.median(w for _, w in s)}
            for name, s in samples.items()}


def _gflop(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def step_flops(row: str, mcfg, tcfg, dataset, device) -> dict:
    """GFLOP of one training step of a row on a real batch: {"total", "parts"} (parts: CTS rows only)."""
    torch.manual_seed(0)
    model = row_network(row, mcfg).to(device)
    loss = row_loss(row, model, mcfg, tcfg, device)
    image, mask = next(batches(dataset, tcfg.batch_size, tcfg.seed, 1, device))

    def train_step():
        value, _ = loss(image, mask, 0, torch.Generator().manual_seed(0))
        value.backward()
    total = _gflop(train_step)
    if not row.startswith("cts"):
        return {"total": total}
    parts = {}
    probe = copy.deepcopy(model)
    sigma = torch.full((image.shape[0],), model.cfg.sigma_max, device=device)
    shares_h = tcfg.teacher_takes_online_signals
    with torch.no_grad():
        encoded = probe.encode(image) if shares_h else None
        parts["teacher_forward"] = _gflop(lambda: probe(torch.randn_like(mask), sigma, image, encoded=encoded))
    if probe.h is not None:
        def h_step():
            feats, logits = probe.h(image)
            torch.autograd.backward([logits.float().sum()] + [f.float().sum() for f in feats.values()])
        parts["online_h_fwd_bwd"] = _gflop(h_step)
        with torch.no_grad():
            parts["teacher_h_forward"] = 0.0 if shares_h else _gflop(lambda: probe.h(image))
    parts["online_g_fwd_bwd"] = total - parts["teacher_forward"] - parts.get("online_h_fwd_bwd", 0.0)
    return {"total": total, "parts": parts}


def parse_config(text: str) -> tuple[str, list[str]]:
    """'g8h:denoiser.base=8,denoiser.downscale=2' -> ('g8h', ['denoiser.base=8', 'denoiser.downscale=2'])."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--config {text!r}: expected NAME:FIELD=VALUE,... (or NAME: for the preset)")
    # a comma inside a tuple value (denoiser.mult=1,2) continues the previous assignment
    items: list[str] = []
    for piece in (p for p in rest.split(",") if p.strip()):
        if "=" in piece or not items:
            items.append(piece.strip())
        else:
            items[-1] += "," + piece.strip()
    return name, items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--data", default="phantom", help="dataset spec (train split) or packed:PATH.npz")
    p.add_argument("--preset", default="test32", help="model and training preset")
    p.add_argument("--row", default="cts_m", help="the CTS row measured for every --config")
    p.add_argument("--config", dest="configs", action="append", type=parse_config, default=[],
                   metavar="NAME:FIELD=VALUE,...", help="a ModelConfig to measure (repeatable; default: the preset's)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row and round")
    p.add_argument("--repeats", type=int, default=3, help="rounds (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per row first")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    base_m, tcfg = preset(args.preset)
    dataset = open_any(args.data, "train", base_m.image_size)
    base_m = override(base_m, [f"in_channels={dataset.in_channels}"])
    configs = dict(args.configs or [("preset", [])])
    rows = {"supervised": ("supervised", base_m, tcfg)}
    rows |= {name: (args.row, override(base_m, sets), tcfg) for name, sets in configs.items()}
    seconds = step_seconds(rows, dataset, device, args.warmup, args.steps, args.repeats)
    sup = seconds["supervised"]
    result = {"benchmark": "cost", **device_info(device), "data": args.data, "preset": args.preset, "row": args.row,
              "batch_size": tcfg.batch_size, "steps": args.steps, "repeats": args.repeats,
              "argv": sys.argv[1:] if argv is None else list(argv), "rows": []}
    print(f"{args.preset} on {args.data}, batch {tcfg.batch_size}, {result['threads'] if 'threads' in result else ''} "
          f"thread(s), {result['device_name']}")
    print(f"{'config':<14} {'params':>9} {'GFLOP/step':>11} {'CPU ms':>8} {'wall ms':>8} {'x sup (CPU)':>11}  set")
    for name, (row, mcfg, _) in rows.items():
        flops = step_flops(row, mcfg, tcfg, dataset, device)
        rec = {"name": name, "row": row, "set": configs.get(name, []), "params": parameters(row, mcfg),
               "gflop_per_step": flops, "cpu_ms_per_step": 1e3 * seconds[name]["cpu_s"],
               "wall_ms_per_step": 1e3 * seconds[name]["wall_s"],
               "cpu_ratio_to_supervised": seconds[name]["cpu_s"] / sup["cpu_s"]}
        result["rows"].append(rec)
        print(f"{name:<14} {rec['params']:>9} {flops['total']:>11.3f} {rec['cpu_ms_per_step']:>8.1f} "
              f"{rec['wall_ms_per_step']:>8.1f} {rec['cpu_ratio_to_supervised']:>11.2f}  {' '.join(rec['set'])}")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

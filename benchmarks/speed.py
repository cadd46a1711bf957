"""Speed: CTS one-step vs multistep vs the diffusion baseline, and training, on one device in one run.

    python benchmarks/speed.py --preset paper256 --device cuda --cuda-graphs --time-budget 150 --json speed.json
    python benchmarks/speed.py --quick --device cpu --json benchmarks/results/speed_cpu.json   # CPU smoke (test32)

Measured (after warm-up, each call between device synchronisations, CUDA events; the median of
the repeats; random inputs; no data loading and no host-side noise generation):
  one_step    f(sigma_max z; x^d) -> mask, at batch 1 (latency) and 16, 64 (throughput)
  multistep   CTS 2 steps (levels sigma_max, 0.8), batch 1, 16, 64
  diffusion   the EDM baseline's Heun sampler at its default 20 steps (39 evaluations), 1 member, batch 1,
              16, 64; its 5-member ensemble costs 5x (reported as derived)
  train       one CTS iteration at batch 8: online forward/backward, target forward, L_CTS, AdamW,
              target and EMA updates; img/s and peak memory; also forward+backward alone
Precisions: "autocast" (how ctslib runs: fp32 weights, bf16 autocast on CUDA, fp32 on the CPU) and
"bf16" (weights and inputs cast to bf16); modes: eager, CUDA graph (--cuda-graphs), torch.compile
(--compile). FLOPs come from torch.utils.flop_counter on the meta device; % of peak is given
against the datasheet dense bf16 rate and against a bf16 matmul measured in the same run.
Every item is guarded: a failure is recorded as "failed: reason", and with --time-budget the
items that no longer fit are recorded as "skipped". The JSON is rewritten after every item.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ctslib.cli import HELP_FMT  # noqa: E402
from benchmarks.measure import count_flops, device_info, measured_matmul_tflops, peak_tflops, sync, time_call  # noqa: E402
from ctslib.baselines.diffusion import EDMConfig, EDMDenoiser, edm_sample, network_evaluations  # noqa: E402
from ctslib.config import preset  # noqa: E402
from ctslib.device import autocast, host_scalars, pick_device, use_channels_last  # noqa: E402
from ctslib.io_utils import write_json_atomic  # noqa: E402
from ctslib.losses import ConsistencyLoss  # noqa: E402
from ctslib.model import CTSModel, count_parameters  # noqa: E402
from ctslib.schedules import ct_target_decay  # noqa: E402
from ctslib.targets import ema_update, make_copy  # noqa: E402
from ctslib.train import build_optimizer  # noqa: E402

# The authors' released code at the same network size (59.8M parameters, 351 GFLOP per slice), bf16,
# measured on the same kind of GPU (issue #6).
REFERENCE = {"ms_per_slice_b16": 4.0, "ms_b1": 14.7, "ms_train_step_b8": 136.0,
             "source": "LanHEU/CTS released code, 59.8M params, bf16, same GPU kind (issue #6)"}
TARGETS = {"batched_pct_peak": 35.0, "batched_ms_per_slice": 1.0, "b1_ms": 4.0, "train_pct_peak": 30.0}
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
ALL_ITEMS = ("flops", "peak", "infer", "graphs", "train", "multistep", "diffusion", "profile", "profile_train", "compile",
             "compile_train")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HELP_FMT)
    p.add_argument("--preset", default="paper256", help="model preset")
    p.add_argument("--variant", default="cts_m", help="CTS variant (the diffusion baseline uses the same network)")
    p.add_argument("--in-channels", type=int, default=4, help="image channels C_img (4 = BraTS)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--batch-sizes", default="1,16,64", help="one-step inference batch sizes")
    p.add_argument("--train-batch", type=int, default=8, help="training batch size")
    p.add_argument("--multistep-batch-sizes", default="1,16,64", help="batch sizes of the 2-step and diffusion timings")
    p.add_argument("--ratio-batch", type=int, default=16,
                   help="batch at which the 2-step and diffusion times are compared with one step (and profiled)")
    p.add_argument("--diffusion-steps", type=int, default=EDMConfig.steps, help="diffusion sampler steps (Heun)")
    p.add_argument("--precisions", default="autocast,bf16", help="autocast and/or bf16 (bf16 weights)")
    p.add_argument("--memory-formats", default="channels_last,contiguous",
                   help="memory formats of the eager inference and training timings")
    p.add_argument("--cuda-graphs", action="store_true", help="also time CUDA-graph replays (CUDA only)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile: inference (mode reduce-overhead) "
                                                          "and the training iteration (default mode)")
    p.add_argument("--compile-batch-sizes", default="1,16", help="batch sizes timed with torch.compile")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode of the inference timings (default: reduce-overhead on CUDA, i.e. with CUDA "
                        "graphs; e.g. max-autotune, which takes far longer to compile)")
    p.add_argument("--items", default=",".join(ALL_ITEMS), help=f"what to measure, from {','.join(ALL_ITEMS)}")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats per item (fewer if --item-seconds runs out)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    p.add_argument("--item-seconds", type=float, default=6.0, help="cap on the timed part of one item")
    p.add_argument("--time-budget", type=float, default=None, help="seconds for the whole run; later items are skipped")
    p.add_argument("--no-matmul", action="store_true", help="skip the measured matmul peak")
    p.add_argument("--quick", action="store_true", help="CPU smoke: test32, batch sizes 1,4, few repeats")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="let cuDNN pick the fastest convolution algorithms for the fixed shapes (CUDA)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.preset, args.repeats, args.item_seconds, args.warmup = "test32", 3, 2.0, 1
        if args.batch_sizes == "1,16,64":
            args.batch_sizes = "1,4"
        if args.multistep_batch_sizes == "1,16,64":
            args.multistep_batch_sizes = "1,4"
        args.ratio_batch, args.train_batch = min(args.ratio_batch, 4), min(args.train_batch, 4)
    return args


class Bench:
    """Runs guarded, time-budgeted items and keeps the JSON up to date."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.start = time.monotonic()
        self.result: dict = {}
        self.items: list[dict] = []

    def remaining(self) -> float:
        if self.args.time_budget is None:
            return math.inf
        return self.args.time_budget - (time.monotonic() - self.start)

    def save(self):
        self.result["items"] = self.items
        self.result["seconds"] = time.monotonic() - self.start
        if self.args.json:
            write_json_atomic(self.args.json, self.result)

    def item(self, record: dict, fn, need: float = 2.0):
        """Run fn() -> dict of measurements into record; record failures and skips instead of raising."""
        if self.remaining() < need:
            record["status"] = f"skipped: time budget ({max(self.remaining(), 0):.0f} s left)"
        else:
            t0 = time.perf_counter()
            try:
                record.update(fn())
                record.setdefault("status", "ok")
            except Exception as exc:  # every optional path is reported, never fatal
                record["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                traceback.print_exc(limit=3)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            record["wall_s"] = round(time.perf_counter() - t0, 2)
        self.items.append(record)
        self.save()
        print(line(record), flush=True)
        return record

    def timing(self, fn, warmup: int | None = None) -> dict:
        return time_call(fn, self.device, self.args.warmup if warmup is None else warmup, self.args.repeats,
                         max_seconds=min(self.args.item_seconds, max(self.remaining() - 1, 0.5)))


def line(r: dict) -> str:
    """One printed row of the table."""
    fmt = "/nchw" if r.get("memory_format") == "contiguous" else ""
    name = f"{r['name']} [{r.get('precision', '')}{'/' + r['mode'] if r.get('mode') else ''}{fmt}]"
    if not r["status"].startswith("ok"):
        return f"{name:<34} b={r.get('batch', ''):<3} {r['status']}"
    if r["name"] in ("flops", "peak", "profile", "profile_train"):
        return f"{name:<34} {r.get('summary', '')}"
    pct = r.get("pct_peak_table")
    pct_m = r.get("pct_peak_measured")
    extra = f" {r['ms_per_slice']:8.3f} ms/slice" if "ms_per_slice" in r else ""
    extra += f" {r['tflops']:7.2f} TFLOP/s" if r.get("tflops") is not None else ""
    extra += f" {pct:5.1f}% of peak" if pct is not None else ""
    extra += f" ({pct_m:.1f}% of matmul)" if pct_m is not None else ""
    if "img_per_s" in r:
        extra += f" {r['img_per_s']:8.1f} img/s"
    if r.get("peak_mem_gib") is not None:
        extra += f" {r['peak_mem_gib']:.2f} GiB"
    return f"{name:<34} b={r['batch']:<3} {r['ms']:9.3f} ms{extra}"


def top_ops(fn, device, calls: int = 3, n: int = 15) -> dict:
    """The aten operators taking the most device time (CPU time on the CPU) over `calls` calls of fn."""
    for _ in range(2):
        fn()
    sync(device)
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(getattr(e, key, 0) for e in events) or 1.0
    top = sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)[:n]
    return {"clock": key,
            "top_ops": [{"op": e.key, "calls_per_forward": e.count / calls, "ms_per_forward": getattr(e, key, 0) / (1e3 * calls),
                         "pct": 100 * getattr(e, key, 0) / total} for e in top],
            "summary": "; ".join(f"{e.key[6:]} {100 * getattr(e, key, 0) / total:.0f}%" for e in top[:6])}


def make_graph(fn, device):
    """Capture fn() (static inputs inside) into a CUDA graph; returns the replay function."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    items = {i.strip() for i in args.items.split(",") if i.strip()}
    if not args.cuda_graphs or device.type != "cuda":
        items.discard("graphs")
    if not args.compile:
        items.discard("compile")
        items.discard("compile_train")
    cfg, tcfg = preset(args.preset, args.variant, args.in_channels)
    bench = Bench(args, device)
    peak, peak_name = peak_tflops(device)
    bench.result = {"benchmark": "speed", **device_info(device), "preset": args.preset, "variant": args.variant,
                    "in_channels": cfg.in_channels, "image_size": cfg.image_size, "quick": args.quick,
                    "params": count_parameters(CTSModel(cfg)), "peak_tflops_table": peak, "peak_table_name": peak_name,
                    "reference": REFERENCE, "targets": TARGETS, "cudnn_benchmark": device.type == "cuda" and args.cudnn_benchmark,
                    "argv": sys.argv[1:] if argv is None else list(argv),
                    "comparable_to_reference": args.preset == "paper256" and device.type == "cuda"}
    print(f"device: {bench.result['device_name']} ({device}); preset {args.preset} {args.variant}, "
          f"{bench.result['params']['total']:,} parameters; torch {torch.__version__}", flush=True)
    size, C = cfg.image_size, cfg.in_channels
    flops: dict = {}
    peaks = {"table": peak, "measured": None}

    def perf(record: dict, flop_per_call: float | None) -> dict:
        """Add TFLOP/s and % of both peaks to a timing record."""
        if flop_per_call:
            tf = flop_per_call / (record["ms"] * 1e-3) / 1e12
            record["tflops"] = tf
            record["pct_peak_table"] = 100 * tf / peaks["table"] if peaks["table"] else None
            record["pct_peak_measured"] = 100 * tf / peaks["measured"] if peaks["measured"] else None
        return record

    # -- FLOPs on the meta device ------------------------------------------------------------------
    def count():
        with torch.device("meta"):
            m = CTSModel(cfg)
            t = make_copy(m)
            img, x = torch.randn(1, C, size, size), torch.randn(1, 1, size, size)
            s = torch.full((1,), cfg.sigma_max, dtype=torch.float64)
            flops["forward_per_slice"] = count_flops(lambda: m(x, s, img))
            flops["h_per_slice"] = count_flops(lambda: m.encode(img)) if m.h is not None else 0
            b = args.train_batch
            img8, x8 = torch.randn(b, C, size, size), torch.randn(b, 1, size, size)
            s8 = torch.full((b,), 1.0, dtype=torch.float64)

            def train_pass():
                out = m(x8, s8, img8)
                with torch.no_grad():
                    t(x8, s8, img8)
                loss = out.denoised.float().sum() + (out.aux_logits.float().sum() if out.aux_logits is not None else 0)
                loss.backward()
            flops["train_step"] = count_flops(train_pass)
        bench.result["flops"] = flops
        return {"summary": f"{flops['forward_per_slice'] / 1e9:.2f} GFLOP per forward per slice "
                           f"(h: {flops['h_per_slice'] / 1e9:.2f}); {flops['train_step'] / 1e12:.3f} TFLOP per "
                           f"training step at batch {args.train_batch}", **flops}
    if "flops" in items:
        bench.item({"name": "flops"}, count, need=1)

    def measure_peak():
        n = 8192 if device.type == "cuda" else 1024
        peaks["measured"] = measured_matmul_tflops(device, n)
        bench.result["peak_tflops_measured"] = peaks["measured"]
        return {"summary": f"{n}^3 {'bf16' if device.type == 'cuda' else 'fp32'} matmul {peaks['measured']:.1f} TFLOP/s; "
                           f"datasheet {peak_name or 'n/a'} {peak if peak else 'n/a'} TFLOP/s",
                "measured_tflops": peaks["measured"], "n": n}
    if "peak" in items and not args.no_matmul:
        bench.item({"name": "peak"}, measure_peak, need=3)

    # -- models --------------------------------------------------------------------------------------
    torch.manual_seed(0)
    models = {}

    default_fmt = "channels_last" if use_channels_last(device) else "contiguous"   # what ctslib uses here
    bench.result["default_memory_format"] = default_fmt

    def get_model(precision: str, fmt: str = default_fmt):
        if (precision, fmt) not in models:
            torch.manual_seed(0)
            m = CTSModel(cfg).to(device).eval()
            if precision == "bf16":
                m = m.to(torch.bfloat16)
            models[precision, fmt] = m.to(memory_format=MEMORY_FORMATS[fmt])
        return models[precision, fmt]

    def inputs(batch: int, precision: str, fmt: str = default_fmt):
        g = torch.Generator(device="cpu").manual_seed(batch)
        img = torch.randn(batch, C, size, size, generator=g).to(device)
        if precision == "bf16":
            img = img.to(torch.bfloat16)
        if fmt == "channels_last":
            img = img.contiguous(memory_format=torch.channels_last)
        z = torch.randn(batch, 1, size, size, generator=g).to(device)
        return img, z

    def amp(precision):
        return autocast(device, enabled=precision == "autocast")

    def one_step_fn(model, img, z, precision):
        sigma = torch.full((img.shape[0],), cfg.sigma_max, device=device, dtype=torch.float64)

        def fn():
            with torch.no_grad(), amp(precision):
                return model(cfg.sigma_max * z, sigma, img).denoised.clamp(-1, 1) > 0
        return fn

    def infer_record(name, batch, precision, mode, fn, flop_per_call, nfe=1, warmup=None):
        t = bench.timing(fn, warmup)
        r = {"ms": t["median_ms"], "ms_min": t["min_ms"], "repeats": t["repeats"], "ms_per_slice": t["median_ms"] / batch,
             "slices_per_s": 1e3 * batch / t["median_ms"], "nfe": nfe}
        return perf(r, flop_per_call)

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    multi_sizes = [int(b) for b in args.multistep_batch_sizes.split(",") if b.strip()]
    if "multistep" in items or "diffusion" in items:
        # the one-step reference for the 2-step and diffusion ratios, at every batch they are timed
        batch_sizes += [b for b in multi_sizes if b not in batch_sizes]
    fwd = flops.get("forward_per_slice")

    formats = [f.strip() for f in args.memory_formats.split(",") if f.strip()]
    formats = [default_fmt] + [f for f in formats if f != default_fmt]
    if "infer" in items:
        for fmt in formats:
            for precision in precisions:
                for b in batch_sizes:
                    def run(b=b, precision=precision, fmt=fmt):
                        img, z = inputs(b, precision, fmt)
                        fn = one_step_fn(get_model(precision, fmt), img, z, precision)
                        return infer_record("one_step", b, precision, "eager", fn, fwd and fwd * b)
                    bench.item({"name": "one_step", "batch": b, "precision": precision, "mode": "eager",
                                "memory_format": fmt}, run)
            for m in list(models):
                if m[1] != default_fmt:
                    del models[m]   # free the other layout's copy

    if "graphs" in items:
        for precision in precisions:
            for b in batch_sizes:
                def run(b=b, precision=precision):
                    img, z = inputs(b, precision)
                    replay = make_graph(one_step_fn(get_model(precision), img, z, precision), device)
                    return infer_record("one_step", b, precision, "graph", replay, fwd and fwd * b)
                bench.item({"name": "one_step", "batch": b, "precision": precision, "mode": "graph", "memory_format": default_fmt}, run)

    # -- training --------------------------------------------------------------------------------------
    def train_run(full: bool, compiled: bool = False, fmt: str = default_fmt, profile: bool = False):
        def run():
            torch.manual_seed(0)
            model = CTSModel(cfg).to(device).train().to(memory_format=MEMORY_FORMATS[fmt])
            target, ema = make_copy(model), make_copy(model)
            opt = build_optimizer(model, tcfg)   # as ctslib.train: fused AdamW on CUDA
            online, teacher = model, target
            if compiled:   # as ctslib.train with compile=True
                torch._dynamo.reset()
                online, teacher = torch.compile(model), torch.compile(target)
            loss_fn = ConsistencyLoss(cfg, tcfg)
            b = args.train_batch
            img, _ = inputs(b, "autocast", fmt)
            mask = (torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(1)) > 0.7).float().to(device)
            k = 100_000
            mu = ct_target_decay(k, tcfg.steps, tcfg.ct.s0, tcfg.ct.s1, tcfg.ct.mu0, tcfg.ct.clamp_schedule)
            logs = {}

            def step():
                gen = torch.Generator().manual_seed(k)
                with autocast(device):
                    loss, lg = loss_fn(online, teacher, img, mask, k, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if full:
                    opt.step()
                    ema_update(target, model, mu)
                    ema_update(ema, model, tcfg.ema_rate)
                logs.update(host_scalars(lg))
            if profile:   # where the time goes instead of how much
                result = top_ops(step, device)
                model = target = ema = opt = online = teacher = None   # free the memory before the next row
                return result
            compile_s = None
            if compiled:
                t0 = time.perf_counter()
                step()
                sync(device)
                compile_s = time.perf_counter() - t0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t = bench.timing(step)
            r = {"ms": t["median_ms"], "ms_min": t["min_ms"], "repeats": t["repeats"], "img_per_s": 1e3 * b / t["median_ms"],
                 "compile_s": compile_s,
                 "loss": logs.get("loss"), "num_scales": logs.get("num_scales"),
                 "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
            model = target = ema = opt = online = teacher = None   # free the memory before the next row
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return perf(r, flops.get("train_step"))
        return run

    if "train" in items:
        for fmt in formats:
            bench.item({"name": "train_iteration", "batch": args.train_batch, "precision": "autocast", "mode": "eager",
                        "memory_format": fmt}, train_run(True, fmt=fmt), need=5)
        bench.item({"name": "train_fwd_bwd", "batch": args.train_batch, "precision": "autocast", "mode": "eager",
                    "memory_format": default_fmt},
                   train_run(False), need=5)

    # -- CTS 2 steps and the diffusion baseline --------------------------------------------------------
    precision = "autocast"

    def two_step_run(bm: int):
        def run():
            model = get_model(precision)
            img, z = inputs(bm, precision)
            z2 = torch.randn_like(z)
            s1 = torch.full((bm,), cfg.sigma_max, device=device, dtype=torch.float64)
            tau = 0.8
            s2 = torch.full((bm,), tau, device=device, dtype=torch.float64)

            def fn():
                with torch.no_grad(), amp(precision):
                    enc = model.encode(img)
                    x0 = model(cfg.sigma_max * z, s1, img, encoded=enc).denoised.clamp(-1, 1)
                    x = x0 + math.sqrt(tau**2 - cfg.sigma_min**2) * z2
                    return model(x, s2, img, encoded=enc).denoised.clamp(-1, 1) > 0
            hf = flops.get("h_per_slice", 0)
            return infer_record("multistep", bm, precision, "eager", fn, fwd and (2 * fwd - hf) * bm, nfe=2)
        return run

    def diffusion_run(bm: int):
        def run():
            torch.manual_seed(0)
            dm = EDMDenoiser(cfg, EDMConfig(steps=args.diffusion_steps)).to(device).eval()
            dm = dm.to(memory_format=MEMORY_FORMATS[default_fmt])
            img, z = inputs(bm, precision)
            nfe = network_evaluations(args.diffusion_steps, "heun")

            def fn():
                with torch.no_grad(), amp(precision):
                    return edm_sample(dm, img, noise=z) > 0
            hf = flops.get("h_per_slice", 0)
            r = infer_record("diffusion", bm, precision, "eager", fn, fwd and ((fwd - hf) * nfe + hf) * bm, nfe=nfe,
                             warmup=1)
            r["ensemble_ms_per_slice_derived"] = r["ms_per_slice"] * EDMConfig.members
            r["steps"] = args.diffusion_steps
            dm = None
            return r
        return run

    for bm in multi_sizes:
        common = {"batch": bm, "precision": precision, "mode": "eager", "memory_format": default_fmt}
        if "multistep" in items:
            bench.item({"name": "cts_2step", **common}, two_step_run(bm))
        if "diffusion" in items:
            bench.item({"name": "diffusion_1member", **common}, diffusion_run(bm), need=5)
    bm = args.ratio_batch

    # -- where the time goes: the top operators of a one-step forward (torch.profiler) -------------------
    if "profile" in items:
        def run():
            prec = "bf16" if device.type == "cuda" else "autocast"
            img, z = inputs(bm, prec)
            return {"batch": bm, "precision": prec, "mode": "eager", "memory_format": default_fmt,
                    **top_ops(one_step_fn(get_model(prec), img, z, prec), device)}
        bench.item({"name": "profile"}, run, need=5)
    if "profile_train" in items:
        bench.item({"name": "profile_train", "batch": args.train_batch, "precision": "autocast", "mode": "eager",
                    "memory_format": default_fmt}, train_run(True, profile=True), need=10)

    # -- torch.compile (slowest to set up: last) -------------------------------------------------------
    if "compile_train" in items:
        bench.item({"name": "train_iteration", "batch": args.train_batch, "precision": "autocast", "mode": "compile",
                    "memory_format": default_fmt},
                   train_run(True, compiled=True), need=100)

    if "compile" in items:
        for b in [int(x) for x in args.compile_batch_sizes.split(",") if x.strip()]:
            prec = "bf16" if device.type == "cuda" else "autocast"

            def run(b=b, prec=prec):
                model = get_model(prec)
                img, z = inputs(b, prec)
                sigma = torch.full((b,), cfg.sigma_max, device=device, dtype=torch.float64)
                mode = args.compile_mode or ("reduce-overhead" if device.type == "cuda" else "default")
                torch._dynamo.reset()  # a fresh, static-shape compile for each batch size
                net = torch.compile(lambda x, s, i: model(x, s, i).denoised.clamp(-1, 1) > 0, mode=mode, dynamic=False)
                t0 = time.perf_counter()
                with torch.no_grad(), amp(prec):
                    net(cfg.sigma_max * z, sigma, img)
                    sync(device)
                compile_s = time.perf_counter() - t0

                def fn():
                    with torch.no_grad(), amp(prec):
                        return net(cfg.sigma_max * z, sigma, img)
                r = infer_record("one_step", b, prec, "compile", fn, fwd and fwd * b)
                r["compile_s"] = compile_s
                r["compile_mode"] = mode
                return r
            bench.item({"name": "one_step", "batch": b, "precision": prec, "mode": "compile",
                        "memory_format": default_fmt}, run, need=60)

    summarize(bench, device)
    bench.save()
    return 0


def summarize(bench: Bench, device) -> None:
    """Best numbers, ratios against the released code and the issue's targets."""
    ok = [r for r in bench.items if r["status"] == "ok" and "ms" in r]
    one = [r for r in ok if r["name"] == "one_step"]
    best = lambda rs, key="ms_per_slice": min(rs, key=lambda r: r[key]) if rs else None  # noqa: E731
    b1 = best([r for r in one if r["batch"] == 1])
    b16 = best([r for r in one if r["batch"] == 16])
    batched = best([r for r in one if r["batch"] >= 16])
    train = best([r for r in ok if r["name"] == "train_iteration"], "ms")
    bm = bench.args.ratio_batch   # one-step at the batch of the multistep / diffusion ratios, same precision
    eager16 = next((r for r in one if r["batch"] == bm and r["precision"] == "autocast" and r["mode"] == "eager"), None)
    diff = next((r for r in ok if r["name"] == "diffusion_1member" and r["batch"] == bm), None)
    two = next((r for r in ok if r["name"] == "cts_2step" and r["batch"] == bm), None)
    tag = lambda r: (f"{r['precision']}/{r['mode']}{'/nchw' if r.get('memory_format') == 'contiguous' else ''} "  # noqa: E731
                     f"b{r['batch']}") if r else None
    s = {"best_b1_ms": b1 and b1["ms"], "best_b1_config": tag(b1),
         "best_b16_ms_per_slice": b16 and b16["ms_per_slice"], "best_b16_config": tag(b16),
         "best_batched_ms_per_slice": batched and batched["ms_per_slice"], "best_batched_config": tag(batched),
         "best_batched_pct_peak": batched and batched.get("pct_peak_table"),
         "train_ms": train and train["ms"], "train_config": tag(train), "train_img_per_s": train and train["img_per_s"],
         "train_pct_peak": train and train.get("pct_peak_table"), "train_peak_mem_gib": train and train.get("peak_mem_gib")}
    ref = REFERENCE
    s["speedup_vs_reference"] = {
        "b16_ms_per_slice": b16 and ref["ms_per_slice_b16"] / b16["ms_per_slice"],
        "b1_latency": b1 and ref["ms_b1"] / b1["ms"],
        "train_step_b8": train and train["batch"] == 8 and ref["ms_train_step_b8"] / train["ms"] or None}
    if eager16 and diff:
        s["diffusion_vs_one_step_per_slice"] = diff["ms_per_slice"] / eager16["ms_per_slice"]
        s["diffusion_ensemble_vs_one_step_per_slice"] = diff["ensemble_ms_per_slice_derived"] / eager16["ms_per_slice"]
    if eager16 and two:
        s["two_step_vs_one_step"] = two["ms_per_slice"] / eager16["ms_per_slice"]
    t = TARGETS
    s["targets_met"] = {
        "batched_pct_peak>=35": None if not (batched and batched.get("pct_peak_table")) else batched["pct_peak_table"] >= t["batched_pct_peak"],
        "batched_ms_per_slice<=1.0": None if not batched else batched["ms_per_slice"] <= t["batched_ms_per_slice"],
        "b1_ms<=4": None if not b1 else b1["ms"] <= t["b1_ms"],
        "train_pct_peak>=30": None if not (train and train.get("pct_peak_table")) else train["pct_peak_table"] >= t["train_pct_peak"]}
    bench.result["summary"] = s
    print(f"\nsummary on {bench.result['device_name']} ({device}), preset {bench.result['preset']}:")
    fmt = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)  # noqa: E731
    print(f"  batch-1 latency      {fmt(s['best_b1_ms'])} ms ({s['best_b1_config']})")
    print(f"  batch-16 per slice   {fmt(s['best_b16_ms_per_slice'])} ms ({s['best_b16_config']})")
    print(f"  best batched         {fmt(s['best_batched_ms_per_slice'])} ms/slice, {fmt(s['best_batched_pct_peak'], '{:.1f}')}% of "
          f"bf16 peak ({s['best_batched_config']})")
    print(f"  training (b{train['batch'] if train else '?'})       {fmt(s['train_ms'], '{:.1f}')} ms/step, "
          f"{fmt(s['train_img_per_s'], '{:.1f}')} img/s, {fmt(s['train_pct_peak'], '{:.1f}')}% of peak, "
          f"{fmt(s['train_peak_mem_gib'], '{:.2f}')} GiB peak memory")
    if "diffusion_vs_one_step_per_slice" in s:
        print(f"  diffusion ({EDMConfig.steps} Heun steps) / CTS one-step per slice: {s['diffusion_vs_one_step_per_slice']:.1f}x "
              f"(ensemble of {EDMConfig.members}: {s['diffusion_ensemble_vs_one_step_per_slice']:.1f}x)")
    if "two_step_vs_one_step" in s:
        print(f"  CTS 2-step / 1-step: {s['two_step_vs_one_step']:.2f}x")
    sp = s["speedup_vs_reference"]
    note = "" if bench.result["comparable_to_reference"] else "  (not comparable: reference is paper256 on a GPU)"
    print(f"  released code's time / ours (above 1 = faster): b16 {fmt(sp['b16_ms_per_slice'], '{:.2f}')}, "
          f"b1 {fmt(sp['b1_latency'], '{:.2f}')}, train {fmt(sp['train_step_b8'], '{:.2f}')}{note}")
    print(f"  targets met: {s['targets_met']}")


if __name__ == "__main__":
    sys.exit(main())

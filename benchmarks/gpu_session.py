"""One GPU session for the benchmarks (issue #6): every stage time-bounded, each stage's JSON kept.

On the GPU machine (no internet, ctslib not installed, data from the carried folder gpu_pack/):
    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_session.py --out "$OUT" --budget 450
Here, the same stages shrunk to a CPU smoke run (a few minutes):
    CPU_SMOKE=1 python benchmarks/gpu_session.py --out runs/gpu_session_smoke

Stages, in order (each a subprocess with its own timeout, so a crash or hang loses only itself):
  smoke        paper256 CTS-M forward + backward in bf16 on CUDA: loss, gradient norms, time,
               bf16-vs-fp32 error of the forward, the released256 parameter count
  speed        benchmarks/speed.py --preset paper256 --cuda-graphs --compile with a time budget
  cts_m        small128 CTS-M on LGG (packed), fixed steps, scored on the test split
  quality_lgg  benchmarks/quality.py --parallel-rows, all rows, LGG, --quality-steps each
  quality_ddti the same on DDTI, at the same time as LGG
  compile      training in both memory formats, the compiled training iteration, compiled inference at
               batch 1 and 64 (a session of its own: compiling takes minutes)
Files written to --out (at most 7): session.json (stage statuses + the smoke results), session.log
(all output), speed_gpu.json, quality_gpu_lgg_cts_m.json, quality_gpu_lgg.json, quality_gpu_ddti.json,
speed_gpu_compile.json. Copy the JSON you keep into benchmarks/results/ and run
benchmarks/readme_results.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("smoke", "speed", "cts_m", "quality_lgg", "quality_ddti", "compile")


class Session:
    def __init__(self, out: Path, budget: float, cpu: bool):
        self.out, self.budget, self.cpu = out, budget, cpu
        self.start = time.monotonic()
        self.work = Path(tempfile.mkdtemp(prefix="cts_gpu_session_"))
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "session.log", "a", buffering=1)
        self.record: dict = {"benchmark": "session", "cpu_smoke": cpu, "budget_s": budget, "stages": [],
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")

    def save(self) -> None:
        from ctslib.io_utils import write_json_atomic
        self.record["elapsed_s"] = round(time.monotonic() - self.start, 1)
        write_json_atomic(self.out / "session.json", self.record)
        os.chmod(self.out / "session.json", 0o644)

    def run(self, name: str, cmd: list[str] | list[list[str]], cap: float, outputs: list[str] = ()) -> dict:
        """Run cmd (or several commands at once) with a timeout of min(cap, time left); stream the output;
        copy the JSON files to --out."""
        cmds = cmd if cmd and isinstance(cmd[0], list) else [cmd]
        limit = min(cap, self.remaining())
        rec = {"stage": name, "cmd": " & ".join(" ".join(c) for c in cmds), "limit_s": round(limit, 1)}
        if limit < 5:
            rec["status"] = f"skipped: {self.remaining():.0f} s left"
            self.say(f"== {name}: {rec['status']}")
        else:
            self.say(f"== {name} (limit {limit:.0f} s, {self.remaining():.0f} s left): {rec['cmd']}")
            env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", PYTHONUNBUFFERED="1")
            t0 = time.monotonic()
            procs, readers = [], []
            for i, c in enumerate(cmds):
                proc = subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
                tag = f"  [{i}] " if len(cmds) > 1 else "  "
                reader = threading.Thread(target=lambda p=proc, t=tag: [self.say(f"{t}{line.rstrip()}") for line in p.stdout],
                                          daemon=True)
                reader.start()
                procs.append(proc)
                readers.append(reader)
            codes, timed_out = [], False
            for proc in procs:
                try:
                    codes.append(proc.wait(timeout=max(limit - (time.monotonic() - t0), 0.1)))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    codes.append(None)
            if timed_out:
                rec["status"] = f"timed out after {limit:.0f} s (partial JSON kept if any)"
            else:
                bad = [c for c in codes if c != 0]
                rec["status"] = "ok" if not bad else f"failed: exit codes {codes}"
            for reader in readers:
                reader.join(timeout=5)
            rec["seconds"] = round(time.monotonic() - t0, 1)
            self.say(f"== {name}: {rec['status']} in {rec['seconds']} s")
        for fname in outputs:
            src = self.work / fname
            if src.exists():
                shutil.copyfile(src, self.out / fname)
                rec.setdefault("files", []).append(fname)
        self.record["stages"].append(rec)
        self.save()
        return rec


def smoke_stage(json_path: str, cpu: bool) -> int:
    """paper256 (test32 on the CPU) CTS-M: bf16 forward + backward, gradient norms, timing, bf16 error."""
    import torch
    from benchmarks.measure import device_info, sync
    from ctslib.config import preset
    from ctslib.data import open_dataset
    from ctslib.device import autocast, host_scalars, in_layout, modules_in_layout, pick_device, use_channels_last
    from ctslib.io_utils import write_json_atomic
    from ctslib.losses import ConsistencyLoss
    from ctslib.model import CTSModel, count_parameters
    from ctslib.targets import make_copy

    if cpu:
        torch.set_num_threads(1)   # a shared 2-core machine: oversubscribed OpenMP threads are ~50x slower
    device = pick_device("cpu" if cpu else "cuda")
    name = "test32" if cpu else "paper256"
    cfg, tcfg = preset(name, "cts_m", 4)
    rec: dict = {"preset": name, **device_info(device)}
    with torch.device("meta"):
        rec["released256_params"] = count_parameters(CTSModel(preset("released256")[0]))["total"]
    rec["released256_params_ok"] = rec["released256_params"] == 59_768_609
    torch.manual_seed(0)
    model = CTSModel(cfg).to(device)
    channels_last = use_channels_last(device)
    modules_in_layout(channels_last, model)
    target = make_copy(model)
    batch = 4 if cpu else 8
    ds = open_dataset("phantom:16", "train", cfg.image_size)
    image = torch.stack([ds[i][0] for i in range(batch)]).to(device)
    mask = torch.stack([ds[i][1] for i in range(batch)]).to(device)
    image = in_layout(image, channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loss_fn = ConsistencyLoss(cfg, tcfg)
    rec["iterations"] = []
    for it in range(4):
        sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            loss, logs = loss_fn(model, target, image, mask, 1000, torch.Generator().manual_seed(it))
        logs = host_scalars(logs)
        model.zero_grad(set_to_none=True)
        loss.backward()
        sync(device)
        dt = time.perf_counter() - t0
        norms = {}
        for part in ("g", "h", "fusers", "ffparsers"):
            grads = [p.grad.float().norm() for p in getattr(model, part).parameters() if p.grad is not None] \
                if getattr(model, part) is not None else []
            norms[part] = float(torch.stack(grads).norm()) if grads else 0.0
        bad = sum(int(not torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
        total = float(sum(v**2 for v in norms.values()) ** 0.5)
        rec["iterations"].append({"ms": dt * 1e3, **logs, "grad_norm": total, "grad_norms": norms, "nonfinite_grads": bad})
        print(f"iteration {it}: {dt * 1e3:.1f} ms, loss {logs['loss']:.5f} (ct {logs['loss_ct']:.5f}, s {logs['loss_s']:.5f}), "
              f"grad norm {total:.4g} (g {norms['g']:.4g}, h {norms['h']:.4g}, fusion {norms['fusers']:.4g}), "
              f"non-finite grads: {bad}", flush=True)
    if device.type == "cuda":
        rec["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    # bf16 autocast vs float32 (TF32 off) on the same eval-mode forward. The zero-initialised layers
    # (ADM/CM) would make F = 0 exactly in both, so they get small random weights first.
    model.eval()
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for prm in model.parameters():
            if prm.numel() > 1 and not prm.any():
                prm.copy_(0.02 * torch.randn(prm.shape, generator=gen))
    rec["bf16_vs_fp32"] = {}
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        z = torch.randn(batch, 1, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(5)).to(device)
        with torch.no_grad():
            for sigma in (80.0, 1.0, 0.01):
                x = (2 * mask - 1) + sigma * z
                s = torch.full((batch,), sigma, device=device, dtype=torch.float64)
                ref = model(x, s, image)
                with autocast(device, enabled=True):
                    low = model(x, s, image)
                err = lambda a, b: float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))  # noqa: E731
                rec["bf16_vs_fp32"][str(sigma)] = {"raw": err(low.raw, ref.raw), "aux_logits": err(low.aux_logits, ref.aux_logits),
                                                   "denoised": err(low.denoised, ref.denoised)}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    print(f"released256 parameters: {rec['released256_params']:,} (expected 59,768,609)")
    print(f"relative error of the bf16-autocast forward vs fp32: {json.dumps(rec['bf16_vs_fp32'])}")
    if "peak_mem_gib" in rec:
        print(f"peak memory {rec['peak_mem_gib']:.2f} GiB")
    write_json_atomic(json_path, rec)
    ok = all(i["nonfinite_grads"] == 0 for i in rec["iterations"]) and rec["released256_params_ok"]
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_session"), help="output folder (default: $OUT)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole session (default 450; CPU smoke 900)")
    p.add_argument("--pack-dir", default="gpu_pack", help="folder with lgg128.npz and ddti128.npz (benchmarks/pack_data.py)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"stages to run, from {','.join(STAGES)}")
    p.add_argument("--cts-m-steps", type=int, default=2000, help="training steps of the cts_m stage")
    p.add_argument("--compile-items", default="flops,peak,train,compile_train,compile",
                   help="speed.py --items of the compile stage")
    p.add_argument("--compile-batch-sizes", default="1,64", help="batch sizes of the compiled inference timings")
    p.add_argument("--compile-extra", default="", help='extra speed.py arguments of the compile stage, e.g. '
                                                       '"--compile-mode max-autotune"')
    p.add_argument("--compile-cap", type=float, default=None, help="seconds for the compile stage (default 150)")
    p.add_argument("--quality-steps", type=int, default=None, help="training steps of every quality row (GPU 700, CPU 20)")
    p.add_argument("--quality-extra", default="--lr 5e-4 --s1 5",
                   help="extra quality.py arguments for every quality stage; the default's s1 = 5 is what the CPU "
                        "'CT settings' ablation favours at a few hundred steps (the committed GPU runs used --s1 10)")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)   # internal: run one stage in this process
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cpu = os.environ.get("CPU_SMOKE", "") not in ("", "0")
    if args.stage == "smoke":
        return smoke_stage(args.json, cpu)

    py = sys.executable
    budget = args.budget or (900.0 if cpu else 450.0)
    session = Session(Path(args.out), budget, cpu)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    W = session.work
    try:
        nvsmi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        nvsmi = f"nvidia-smi unavailable ({type(exc).__name__})"
    session.record["nvidia_smi"] = nvsmi
    session.say(f"session: {'CPU smoke' if cpu else 'GPU'}; budget {budget:.0f} s; {nvsmi}")

    if cpu:   # tiny everything; the data are packed here from the data root ($CTS_DATA_ROOT, else data/sample) at 32 px
        qpreset, size = "test32", 32
        pack = W / "pack"
        for data in ("lgg", "ddti"):
            session.run(f"pack_{data}", [py, "benchmarks/pack_data.py", "--data", data, "--size", "32", "--limit", "40",
                                         "--splits", "train,test", "--out", str(pack / f"{data}32.npz")], 240)
        speed_args = ["--quick", "--device", "cpu", "--threads", "1"]
        q_common = ["--device", "cpu", "--threads", "1", "--diffusion-steps", "4", "--members", "2", "--n-bootstrap", "50",
                    "--eval-batch", "16"]
        cts_steps, caps = 20, {"smoke": 120, "speed": 150, "cts_m": 150, "quality": 300, "compile": 200}
        args.quality_steps = args.quality_steps or 20
    else:
        qpreset, size = "small128", 128
        pack = Path(args.pack_dir)
        speed_args = ["--preset", "paper256", "--device", "cuda", "--cuda-graphs", "--item-seconds", "3", "--repeats", "15"]
        q_common = ["--device", "cuda"]
        cts_steps, caps = args.cts_m_steps, {"smoke": 60, "speed": 280, "cts_m": 110, "quality": 300, "compile": 150}
        args.quality_steps = args.quality_steps or 700
    q_common += shlex.split(args.quality_extra)

    if "smoke" in stages:
        rec = session.run("smoke", [py, "benchmarks/gpu_session.py", "--stage", "smoke", "--json", str(W / "smoke.json")],
                          caps["smoke"])
        if (W / "smoke.json").exists():
            rec["result"] = json.loads((W / "smoke.json").read_text())
            session.save()
    if "speed" in stages:
        cap = caps["speed"]
        extra = [] if cpu else ["--compile", "--compile-batch-sizes", "16"]
        session.run("speed", [py, "benchmarks/speed.py", *speed_args, *extra, "--time-budget", str(int(min(cap, session.remaining()) - 25)),
                              "--json", str(W / "speed_gpu.json")], cap, ["speed_gpu.json"])
    lgg, ddti = pack / f"lgg{size}.npz", pack / f"ddti{size}.npz"
    for f in (lgg, ddti):
        if not f.exists():
            session.say(f"warning: {f} is missing (make it with benchmarks/pack_data.py and carry {pack}); "
                        f"the stages that read it will fail")
    if "cts_m" in stages:
        cap = min(caps["cts_m"], session.remaining())
        session.run("cts_m", [py, "benchmarks/quality.py", "--data", f"packed:{lgg}", "--preset", qpreset, "--rows", "cts_m",
                              "--steps", str(cts_steps), "--cts-outputs", "one_step,multistep,ensemble,aux_head",
                              "--tag", "cts_m stage", "--time-budget", str(int(cap - 15)), *q_common,
                              "--json", str(W / "quality_gpu_lgg_cts_m.json")], cap, ["quality_gpu_lgg_cts_m.json"])
    # Quality: both datasets at once, every row its own process (quality.py --parallel-rows): a small128
    # model leaves most of an H100 idle, so ten concurrent rows train far more steps in the same minutes.
    # Every row trains the same fixed number of steps; --time-budget cuts a row's training short (and
    # says so in its JSON) if the steps do not fit, leaving 90 s to score it.
    qdata = [(d, p) for d, p in (("lgg", lgg), ("ddti", ddti)) if f"quality_{d}" in stages]
    if qdata:
        left = session.remaining()
        cap = min(caps["quality"], left - 10)
        if cap < 60:
            for d, _ in qdata:
                session.record["stages"].append({"stage": f"quality_{d}", "status": f"skipped: {left:.0f} s left"})
            session.say(f"== quality: skipped ({left:.0f} s left)")
            session.save()
        else:
            cmds = [[py, "benchmarks/quality.py", "--data", f"packed:{path}", "--preset", qpreset, "--parallel-rows",
                     "--steps", str(args.quality_steps), "--time-budget", str(int(cap - 90)), "--threads", "2", *q_common,
                     "--json", str(W / f"quality_gpu_{d}.json")] for d, path in qdata]
            session.run("quality_" + "_".join(d for d, _ in qdata), cmds, cap, [f"quality_gpu_{d}.json" for d, _ in qdata])
    if "compile" in stages:
        if session.remaining() < 90:
            session.record["stages"].append({"stage": "compile", "status": f"skipped: {session.remaining():.0f} s left"})
            session.say(f"== compile: skipped ({session.remaining():.0f} s left)")
            session.save()
        else:
            cap = min(args.compile_cap or caps["compile"], session.remaining() - 5)
            session.run("compile", [py, "benchmarks/speed.py", *speed_args, *shlex.split(args.compile_extra),
                                    "--items", args.compile_items,
                                    "--compile", "--compile-batch-sizes", args.compile_batch_sizes,
                                    "--precisions", "bf16" if not cpu else "autocast",
                                    "--time-budget", str(int(cap - 10)), "--json", str(W / "speed_gpu_compile.json")],
                        cap, ["speed_gpu_compile.json"])
    session.record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    session.save()
    session.say("stage summary: " + "; ".join(f"{s['stage']} {s['status']}" for s in session.record["stages"]))
    session.log.close()
    shutil.rmtree(W, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

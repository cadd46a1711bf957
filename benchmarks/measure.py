"""Measuring speed honestly: device-synchronised timing, FLOP counts and the device's peak rate.

- `time_call`: warm-up, then `repeats` calls each bracketed by a device synchronisation and timed
  with CUDA events (host clock on the CPU); the median in milliseconds.
- `count_flops`: torch.utils.flop_counter over one call (convolutions, matmuls, attention; norms
  and pointwise ops are not counted, as usual). Runs on the meta device when asked, so a
  paper256 forward is counted in about a second on a CPU.
- `peak_tflops`: the datasheet dense bf16 rate of known GPUs; `measured_matmul_tflops` measures
  a large bf16 matrix product in the same run, the practical ceiling.
"""
from __future__ import annotations

import datetime as _dt
import platform
import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, from the vendors' datasheets. Longest match wins.
BF16_PEAK_TFLOPS = {
    "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4,
    "H200": 989.4, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "A10G": 125.0, "A10": 125.0,
    "L40S": 362.0, "L4": 121.0, "RTX 4090": 165.2, "V100": 125.0, "T4": 65.0,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 10,
              max_seconds: float | None = None) -> dict:
    """Median / min / max milliseconds of fn() over `repeats` synchronised calls after `warmup` calls.

    With max_seconds, the number of repeats is cut so that the timed part stays near that budget
    (at least 3 repeats).
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    t_start = time.perf_counter()
    for i in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if max_seconds is not None and i >= 2 and time.perf_counter() - t_start > max_seconds:
            break
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "repeats": len(times)}


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of one call of fn (a multiply-add counts 2), forward and any backward inside it."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def peak_tflops(device: torch.device) -> tuple[float | None, str | None]:
    """(datasheet dense bf16 TFLOP/s, matched name) for a CUDA device; (None, None) elsewhere or if unknown."""
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    hits = [k for k in BF16_PEAK_TFLOPS if k.lower() in name.lower()]
    if not hits:
        return None, None
    best = max(hits, key=len)
    return BF16_PEAK_TFLOPS[best], best


def measured_matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an n x n x n matrix product on random data: bf16 on CUDA, float32 on the CPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    t = time_call(lambda: a @ b, device, warmup=3, repeats=repeats)
    return 2 * n**3 / (t["median_ms"] * 1e-3) / 1e12


def device_info(device: torch.device) -> dict:
    """What ran the measurement, and when (UTC)."""
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, device_kind="cuda", memory_gib=round(props.total_memory / 2**30, 1),
                    sms=props.multi_processor_count, cuda=torch.version.cuda)
    else:
        cpu = platform.processor() or "cpu"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        info.update(device_name=cpu, device_kind="cpu", threads=torch.get_num_threads())
    return info

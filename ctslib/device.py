"""Device selection and mixed precision: CUDA with bf16 autocast where present, CPU otherwise."""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU runs stay in float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to `device` without a host sync: through pinned memory, non-blocking, on CUDA.

    A plain .to("cuda") from pageable memory waits for all queued GPU work, which stalls the host
    loop once per copy.
    """
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def host_scalars(named: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """Scalar tensors as Python floats with one device->host sync for all of them (not one per .item());
    values that are already numbers stay as they are."""
    tensors = {k: v for k, v in named.items() if torch.is_tensor(v)}
    values = torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist() if tensors else []
    return {**named, **dict(zip(tensors, values))}


@functools.lru_cache(maxsize=None)
def _group_norm_keeps_channels_last(device: str) -> bool:
    x = torch.zeros(1, 8, 4, 4, device=device).contiguous(memory_format=torch.channels_last)
    return F.group_norm(x, 2).is_contiguous(memory_format=torch.channels_last)


def use_channels_last(device: torch.device, requested: bool | None = None) -> bool:
    """Whether to run the networks in channels_last on `device` (None: decide from this torch build).

    Convolutions (cuDNN, oneDNN) are fastest in channels_last, but a GroupNorm that cannot keep that
    layout converts every activation to NCHW and back, which costs more than channels_last gains
    (benchmarks/results/speed_gpu*.json and speed_cpu.json compare both layouts). So: channels_last
    wherever this torch's GroupNorm keeps it.
    """
    if requested is not None:
        return requested
    return _group_norm_keeps_channels_last(str(device))


def modules_in_layout(channels_last: bool, *modules: torch.nn.Module | None) -> None:
    """Convert the given modules (None skipped) to channels_last in place when asked; else leave them NCHW."""
    if channels_last:
        for m in modules:
            if m is not None:
                m.to(memory_format=torch.channels_last)


def in_layout(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A (B,C,H,W) batch in the networks' memory format (a no-op for NCHW)."""
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"

"""Target and EMA models, and dropout masks shared between the online and target passes.

- theta^- <- mu theta^- + (1 - mu) theta  (paper step 9; float buffers averaged the same way)
- theta_ema <- r theta_ema + (1 - r) theta  (evaluation EMA)
- The target pass replays the RNG state of the online pass so both use the same dropout masks
  (docs/method.md section 1.3 step 8 and section 6.1; the released code misses the CUDA RNG, docs/departures.md row 13).
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn


def make_copy(model: nn.Module) -> nn.Module:
    """A deep copy (buffers included) that never receives gradients."""
    clone = copy.deepcopy(model)
    clone.requires_grad_(False)
    return clone


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source, over parameters and float buffers; other buffers are copied."""
    torch._foreach_lerp_(list(target.parameters()), [s.detach() for s in source.parameters()], 1.0 - decay)
    for mine, theirs in zip(target.buffers(), source.buffers()):
        if mine.dtype.is_floating_point:
            mine.lerp_(theirs.to(mine.dtype), 1.0 - decay)
        else:
            mine.copy_(theirs)


class RNGSnapshot:
    """The CPU and (where used) CUDA RNG state at one moment, replayable inside `replay()`.

    `replay()` runs its body from the captured state and then restores the RNG as it was, so the
    global random stream continues as if the replayed pass had not happened.
    """

    def __init__(self, device: torch.device | str):
        device = torch.device(device)
        self.cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        self.cpu_state = torch.get_rng_state()
        self.cuda_states = [torch.cuda.get_rng_state(d) for d in self.cuda_devices]

    @contextlib.contextmanager
    def replay(self):
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.set_rng_state(self.cpu_state)
            for d, state in zip(self.cuda_devices, self.cuda_states):
                torch.cuda.set_rng_state(state, d)
            yield

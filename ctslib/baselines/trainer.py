"""A small trainer for the baselines: one model, one loss, an optimiser and an evaluation EMA.

It reuses the CTS trainer's pieces (`StepBatchSampler`, `build_optimizer`, `RunOptions`, atomic
checkpoints, bf16 autocast on CUDA, a JSONL log) but has no target network and no consistency
schedules. `loss_fn(model, image, mask, step, generator) -> (loss, logs)` defines what is learnt.
A wall-clock `deadline` (time.monotonic() value) stops training early; the summary says so.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..config import ModelConfig, TrainConfig
from ..device import autocast, describe, in_layout, modules_in_layout, pick_device, use_channels_last
from ..targets import ema_update, make_copy
from ..train import RunOptions, StepBatchSampler, TrainingDiverged, build_optimizer

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, torch.Generator], tuple[torch.Tensor, dict]]


def _log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def fit(model: nn.Module, loss_fn: LossFn, train_set: Dataset, model_cfg: ModelConfig, train_cfg: TrainConfig,
        run: RunOptions = RunOptions(), *, kind: str, extra: dict | None = None, data_spec: str = "",
        deadline: float | None = None) -> tuple[nn.Module, dict]:
    """Train `model` from scratch for run.max_steps (default train_cfg.steps) iterations.

    Returns (EMA copy in eval mode, summary). The checkpoint OUT/ckpt.pt holds the online and EMA
    weights, the configs and `kind`/`extra` (what `load_baseline` needs); OUT/log.jsonl the curve.
    """
    device = pick_device(run.device)
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    max_steps = run.max_steps if run.max_steps is not None else train_cfg.steps
    torch.manual_seed(train_cfg.seed)
    model = model.to(device)
    ema = make_copy(model)
    opt = build_optimizer(model, train_cfg)
    channels_last = use_channels_last(device, run.channels_last)
    modules_in_layout(channels_last, model, ema)
    online = torch.compile(model) if run.compile else model
    sampler = StepBatchSampler(len(train_set), train_cfg.batch_size, train_cfg.seed, 0, max_steps)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=run.num_workers, pin_memory=device.type == "cuda")
    log_path = out / "log.jsonl"
    log_path.unlink(missing_ok=True)
    _log(log_path, {"event": "start", "kind": kind, "device": describe(device), "data": data_spec,
                    "model": asdict(model_cfg), "train": asdict(train_cfg), "extra": extra or {}})
    model.train()
    step, last, truncated = 0, {}, False
    start = t0 = time.perf_counter()
    seen = 0
    bar = tqdm(total=max_steps, desc=f"train {kind}", disable=not run.progress)
    for image, mask, _ in loader:
        if deadline is not None and time.monotonic() > deadline:
            truncated = True
            break
        image, mask = in_layout(image.to(device, non_blocking=True), channels_last), mask.to(device, non_blocking=True)
        gen = torch.Generator().manual_seed(train_cfg.seed * 1_000_003 + step)
        with autocast(device):
            loss, logs = loss_fn(online, image, mask, step, gen)
        if not math.isfinite(logs["loss"]):
            bar.close()
            raise TrainingDiverged(f"{kind}: loss became {logs['loss']} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        ema_update(ema, model, train_cfg.ema_rate)
        step += 1
        seen += image.shape[0]
        last = logs
        bar.update(1)
        if step % run.log_every == 0 or step == max_steps:
            dt = time.perf_counter() - t0
            _log(log_path, {"step": step, **logs, "img_per_s": seen / dt if dt > 0 else None})
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
            t0, seen = time.perf_counter(), 0
    bar.close()
    seconds = time.perf_counter() - start
    save_checkpoint(out / "ckpt.pt", {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                                      "step": step, "kind": kind, "extra": extra or {}, "model_cfg": asdict(model_cfg),
                                      "train_cfg": asdict(train_cfg), "data": data_spec})
    ema.eval()
    summary = {"kind": kind, "step": step, "requested_steps": max_steps, "truncated": truncated, "seconds": seconds,
               "img_per_s": step * train_cfg.batch_size / seconds if seconds > 0 else None, "last": last,
               "out": str(out), "device": describe(device)}
    _log(log_path, {"event": "end", **{k: v for k, v in summary.items() if k != "last"}})
    return ema, summary

"""Training: one readable loop (nanoGPT style), `fit`, for CTS (`train`) and the baselines (ctslib.baselines).

Single process (CPU or one GPU):
    python -m ctslib train --preset tiny64 --variant cts_m --data phantom --steps 400 --out runs/quick
Data parallel on N GPUs (rank 0 logs and checkpoints):
    torchrun --standalone --nproc_per_node=N -m ctslib train --preset paper256 --data brats:PATH --out runs/brats

Per iteration (docs/method.md section 1.3): sample a batch, L_CTS = L_CT + alpha L_S with the teacher at the
less-noisy level, an optimiser step on theta, then theta^- <- mu(k) theta^- + (1 - mu(k)) theta (CT)
and theta_ema <- r theta_ema + (1 - r) theta. iCT/ECT use the online weights under stop-gradient
as the teacher instead of theta^-.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from . import schedules
from .checkpoint import load_checkpoint, save_checkpoint
from .run_folder import CHECKPOINT, LOG, check_run_folder, start_run_folder
from .config import ModelConfig, TrainConfig
from .device import autocast, describe, host_scalars, in_layout, modules_in_layout, pick_device, use_channels_last
from .evaluate import EvalOptions, evaluate, headline
from .logs import append_jsonl
from .losses import ConsistencyLoss
from .model import CTSModel
from .sampling import EPOCH_STRIDE, derive_seed
from .targets import ema_update, make_copy


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


@dataclass
class RunOptions:
    """How to run (not what to train): output folder, logging, checkpoints, device."""
    out: str = "runs/default"
    max_steps: int | None = None       # stop after this many iterations (default: TrainConfig.steps)
    log_every: int = 10
    eval_every: int = 100
    ckpt_every: int = 100
    snapshot_every: int = 0            # keep an EMA-only snapshot every n steps (convergence plots); 0 = off
    val_limit: int | None = 64
    eval_members: int = 1
    device: str = "auto"
    compile: bool = False
    channels_last: bool | None = None  # memory format; None: device.use_channels_last decides
    num_workers: int = 0
    resume: bool = False               # continue the run in `out` (it must hold ckpt.pt)
    force: bool = False                # replace the run in `out`; without resume/force an existing run is an error
    progress: bool = True
    extra: dict = field(default_factory=dict)


class StepBatchSampler(Sampler):
    """Batch indices as a pure function of (seed, step): resumable and identical across world sizes.

    The global batch of step k is drawn without replacement from a per-epoch permutation; each
    rank keeps indices[rank::world].
    """

    def __init__(self, n: int, global_batch: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        if n <= 0:
            raise ValueError("the training set is empty")
        self.n, self.b, self.seed, self.start, self.stop, self.rank, self.world = n, global_batch, seed, start, stop, rank, world

    def indices(self, step: int) -> list[int]:
        per_epoch = max(self.n // self.b, 1)
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch, EPOCH_STRIDE)))
        idx = perm[(pos * self.b) % self.n:][: self.b]
        if len(idx) < self.b:  # tiny sets: wrap around
            idx = torch.cat([idx, perm[: self.b - len(idx)]])
        return idx[self.rank::self.world].tolist()

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (paper) or RAdam (released), lr 1e-4."""
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # one fused kernel for all parameters on CUDA instead of a dozen foreach launches per step
    fused = all(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def _config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """'name: saved -> current' for every (nested) field that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<missing>"), current.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_resume_configs(path: Path, state: dict, model_cfg: ModelConfig, train_cfg: TrainConfig) -> list[str]:
    """Resuming needs the checkpoint's network: a different ModelConfig is an error naming the fields.

    TrainConfig changes (a new lr or seed to continue with) are allowed; they are returned so that the
    log records them.
    """
    model_diff = _config_differences(state.get("model_cfg") or {}, asdict(model_cfg))
    if model_diff:
        raise ValueError(f"{path}: cannot resume, the checkpoint was trained with another model config "
                         f"({'; '.join(model_diff)}); use the same preset/options or another --out")
    return _config_differences(state.get("train_cfg") or {}, asdict(train_cfg))


LossFn = Callable[..., tuple[torch.Tensor, dict]]
"""``loss_fn(online, teacher, image, mask, step, generator) -> (loss, terms)``, ``terms`` the logged scalars (0-d
tensors or numbers): the protocol of ``losses.ConsistencyLoss``; ``baseline_loss`` adapts a baseline's
``loss_fn(model, image, mask, step, generator)``. A loss with a ``draw(step, shape, generator)`` method has its
draws made for the global batch in a data-parallel run (`shard_draws`)."""


def baseline_loss(loss_fn: Callable[..., tuple[torch.Tensor, dict]]) -> LossFn:
    """A teacher-free ``loss_fn(model, image, mask, step, generator)`` as a `fit` loss."""
    def run(online, teacher, image, mask, step, generator):
        return loss_fn(online, image, mask, step, generator)
    return run


def shard_draws(loss_fn: LossFn, rank: int, world: int) -> LossFn:
    """`loss_fn` drawing its levels and noise for the global batch (world x local) and keeping this rank's rows, so
    that a data-parallel run draws exactly what one process with the global batch would."""
    local = copy.copy(loss_fn)
    local.draw = lambda step, shape, generator=None: loss_fn.draw(step, (shape[0] * world, *shape[1:]),
                                                                  generator).rows(rank, world)
    return local


def fit(model: nn.Module, loss_fn: LossFn, train_set: Dataset, model_cfg: ModelConfig, train_cfg: TrainConfig,
        run: RunOptions = RunOptions(), *, target: nn.Module | None = None,
        validate: Callable[[nn.Module, torch.device], dict] | None = None, kind: str = "cts",
        extra: dict | None = None, data_spec: str = "", deadline: float | None = None) -> tuple[nn.Module, dict]:
    """The training loop shared by CTS and the baselines; returns (EMA copy, summary).

    Per iteration: a batch (`StepBatchSampler`), ``loss_fn`` with the step's noise generator, an optimiser
    step on theta, then theta^- <- mu(k) theta^- + (1 - mu(k)) theta for the ``target`` network (CT only,
    docs/method.md section 1.3) and theta_ema <- r theta_ema + (1 - r) theta. The teacher is ``target``, or
    the online weights without one. Logs to OUT/log.jsonl, checkpoints OUT/ckpt.pt (``kind``/``extra`` say
    what it holds), resumes exactly (run.resume), stops on a NaN/inf loss keeping the last good checkpoint,
    and stops early past ``deadline`` (a time.monotonic() value; the summary says ``truncated``).
    ``validate(ema, device)`` returns the fields of a "val" log record every run.eval_every steps.
    The caller seeds torch and builds ``model`` (and ``target``): the loop draws from the RNG state it finds.
    """
    rank, world, local_rank = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and run.device != "cpu" else "gloo")
    device = pick_device(run.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    out = Path(run.out)
    is_main = rank == 0
    check_run_folder(out, run.resume, run.force)
    max_steps = run.max_steps if run.max_steps is not None else train_cfg.steps
    if train_cfg.batch_size % world:
        raise ValueError(f"batch size {train_cfg.batch_size} is not divisible by the world size {world}")

    model = model.to(device)
    target = None if target is None else target.to(device)
    ema = make_copy(model)
    opt = build_optimizer(model, train_cfg)
    step = 0
    ckpt_path = out / CHECKPOINT
    resume_notes: list[str] = []
    if run.resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        resume_notes = check_resume_configs(ckpt_path, state, model_cfg, train_cfg)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        if target is not None:
            target.load_state_dict(state["target"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    channels_last = use_channels_last(device, run.channels_last)
    modules_in_layout(channels_last, model, ema, target)
    online = model
    if world > 1:
        # Every parameter gets a gradient unless the aux head is switched off (alpha = 0).
        unused = model_cfg.uses_encoder and train_cfg.alpha == 0
        online = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)
        if hasattr(loss_fn, "draw"):
            loss_fn = shard_draws(loss_fn, rank, world)
    teacher = target if target is not None else model   # CT: the target network; iCT/ECT: the online weights
    if run.compile:   # one graph with backward for the online pass, one forward-only graph for the teacher
        if model_cfg.denoiser.dropout > 0:
            # the teacher replays the online pass's dropout masks from the global RNG state (RNGSnapshot);
            # inductor's own RNG would not follow that state, so use eager's random ops
            torch._inductor.config.fallback_random = True
        online = torch.compile(online)
        teacher = torch.compile(teacher)

    sampler = StepBatchSampler(len(train_set), train_cfg.batch_size, train_cfg.seed, step, max_steps, rank, world)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=run.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    log_path = out / LOG
    if is_main:
        start_run_folder(out, run.resume, run.force)   # stale temp files out; with force the old run's files too
        append_jsonl(log_path, {"event": "start", "kind": kind, "step": step, "device": describe(device), "world": world,
                                "train_config_changes_on_resume": resume_notes, "data": data_spec,
                                "model": asdict(model_cfg), "train": asdict(train_cfg), "extra": extra or {}})

    def save(path: Path):
        try:
            write_checkpoint(path)
        except OSError as exc:   # a full disk: the previous file stays as it was (atomic write)
            kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"
            raise OSError(exc.errno, f"{exc.strerror or exc}; {kept}", str(path)) from None

    def write_checkpoint(path: Path):
        save_checkpoint(path, {
            "model": model.state_dict(), "ema": ema.state_dict(),
            "target": None if target is None else target.state_dict(),
            "optimizer": opt.state_dict(), "step": step,
            "rng": {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "kind": kind, "extra": extra or {},
            "model_cfg": asdict(model_cfg), "train_cfg": asdict(train_cfg), "data": data_spec,
        })

    model.train()
    start = t0 = time.perf_counter()
    seen, last, truncated, saved = 0, {}, False, step
    bar = tqdm(total=max_steps, initial=step, desc="train" if kind == "cts" else f"train {kind}",
               disable=not (run.progress and is_main))
    for image, mask, _ in loader:
        if deadline is not None and time.monotonic() > deadline:
            truncated = True
            break
        image, mask = in_layout(image.to(device, non_blocking=True), channels_last), mask.to(device, non_blocking=True)
        gen = torch.Generator().manual_seed(derive_seed(train_cfg.seed, step))
        with autocast(device):
            loss, terms = loss_fn(online, teacher, image, mask, step, gen)
        logs = host_scalars(terms)     # one device sync for all logged terms
        if not math.isfinite(logs["loss"]):
            bar.close()
            who = "" if kind == "cts" else f"{kind}: "
            raise TrainingDiverged(f"{who}loss became {logs['loss']} at step {step}; the last good checkpoint "
                                   f"{ckpt_path if ckpt_path.exists() else '(none yet)'} is kept")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        mu = None
        if target is not None:
            ct = train_cfg.ct
            mu = schedules.ct_target_decay(step, train_cfg.steps, ct.s0, ct.s1, ct.mu0, ct.clamp_schedule)
            if not train_cfg.released.frozen_target:
                ema_update(target, model, mu)
        ema_update(ema, model, train_cfg.ema_rate)
        step += 1
        seen += image.shape[0] * world
        bar.update(1)
        last = logs
        if is_main and (step % run.log_every == 0 or step == max_steps):
            dt = time.perf_counter() - t0
            append_jsonl(log_path, {"step": step, **logs, "mu": mu, "lr": opt.param_groups[0]["lr"],
                                    "img_per_s": seen / dt if dt > 0 else None})
            bar.set_postfix(loss=f"{logs['loss']:.4f}", **({"N": logs["num_scales"]} if "num_scales" in logs else {}))
            t0, seen = time.perf_counter(), 0
        if is_main and validate is not None and run.eval_every and (step % run.eval_every == 0 or step == max_steps):
            append_jsonl(log_path, {"step": step, "event": "val", **validate(ema, device)})
        if is_main and run.snapshot_every and step % run.snapshot_every == 0:
            save_checkpoint(out / f"snapshot_{step:07d}.pt", {"ema": ema.state_dict(), "step": step,
                                                               "model_cfg": asdict(model_cfg), "train_cfg": asdict(train_cfg)})
        if is_main and (step % run.ckpt_every == 0 or step == max_steps):
            save(ckpt_path)
            saved = step
    bar.close()
    if is_main and saved != step:      # cut short by the deadline between two checkpoints
        save(ckpt_path)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    summary = {"kind": kind, "step": step, "requested_steps": max_steps, "truncated": truncated, "seconds": seconds,
               "img_per_s": step * train_cfg.batch_size / seconds if seconds > 0 else None, "last": last,
               "out": str(out), "device": describe(device)}
    if is_main:
        append_jsonl(log_path, {"event": "end", **{k: v for k, v in summary.items() if k != "last"}})
    return ema.eval(), summary


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set: Dataset, val_set: Dataset | None = None,
          run: RunOptions = RunOptions(), data_spec: str = "") -> dict:
    """Train (or resume) a CTS model with L_CTS (docs/method.md section 1.3); returns `fit`'s summary.
    Checkpoints and logs go to run.out."""
    torch.manual_seed(train_cfg.seed)
    model = CTSModel(model_cfg)
    target = make_copy(model) if train_cfg.objective == "ct" else None

    def validate(ema: nn.Module, device: torch.device) -> dict:
        res = evaluate(ema, val_set, train_cfg.released.mask_encoding,
                       EvalOptions(outputs=("one_step", "aux_head"), limit=run.val_limit, hd95=False, lesion_wise=False,
                                   n_bootstrap=0, progress=False, members=run.eval_members), device)
        h = headline(res)
        return {"val_dice_consistency": h.get("one_step"), "val_dice_aux": h.get("aux_head")}

    _, summary = fit(model, ConsistencyLoss(model_cfg, train_cfg), train_set, model_cfg, train_cfg, run, target=target,
                     validate=None if val_set is None else validate, data_spec=data_spec)
    return summary

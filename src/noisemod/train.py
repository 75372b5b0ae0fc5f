"""Training: :func:`fit` trains one config into a run directory and returns its result.

``fit`` goes down the layers and comes back once: it builds the run (:mod:`noisemod.training.build`),
trains the epochs (:mod:`noisemod.training.epoch`), records each with the checkpoint policy
(:mod:`noisemod.training.checkpoints`) and the monitor (:mod:`noisemod.training.monitor`), under the
runtime of :mod:`noisemod.training.runtime` (device, ``torchrun``, signals), then evaluates best.pt
(:mod:`noisemod.evaluation`). The pieces are public, so that other loops (benchmarks, notebooks) are
built from the same parts; they are re-exported here:

- :func:`load_data`, :func:`build_model`, :func:`build_optimizer`, :func:`build_scheduler`, and
  :func:`build_training`, which returns a :class:`Training` (model, trained module, method,
  optimizer, ... and ``step(x, y)``, one optimization step);
- :func:`train_epoch`: one epoch (or the rest of an interrupted one), no device sync per step;
- :func:`validate`: validation accuracy; :func:`evaluate`: test accuracy, VII, robust accuracy.

Every file is written atomically, and checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .config import TrainConfig
from .data import BatchLoader
from .evaluation import evaluate
from .rundir import RunDir, RunDirError, load_model
from .training.build import Training, build_model, build_optimizer, build_scheduler, build_training, load_data
from .training.checkpoints import check_run_dir, end_epoch, save_last, validate
from .training.epoch import RunState, train_epoch
from .training.monitor import Monitor
from .training.runtime import (
    StopOnSignal,
    TrainingInterrupted,
    broadcast_flag,
    end_distributed,
    git_sha,
    init_distributed,
    reduce_totals,
    resolve_device,
    versions,
)

__all__ = [
    "RunDirError",
    "RunState",
    "Training",
    "TrainingInterrupted",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_training",
    "evaluate",
    "fit",
    "load_data",
    "load_model",
    "resolve_device",
    "train_epoch",
    "validate",
]


def fit(
    config: TrainConfig, out, *, resume: bool = False, progress: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Train ``config`` into the run directory ``out`` and return ``result.json``'s content.

    Keeps the checkpoint with the best validation accuracy (the paper's protocol) and reports
    test accuracy and VII (Definition 3, x_bar the mean test image) on it. With ``resume=True``
    continues from ``out/last.pt``; on CPU the result equals an uninterrupted run's. SIGINT or
    SIGTERM writes a resumable checkpoint after the current step and raises
    :class:`TrainingInterrupted`. A NaN or Inf loss raises ``FloatingPointError`` naming the epoch
    and step, and ``last.pt`` keeps the last good epoch. Under ``torchrun`` it trains with
    DistributedDataParallel, each rank with its own noise.
    """
    run = RunDir(out)
    dist, device = init_distributed(config.device)
    ckpt = check_run_dir(run, config, resume) if dist.main else (run.read_checkpoint("last") if resume else None)
    say = log if dist.main else (lambda *_: None)
    t0 = time.perf_counter()
    data, train_split = load_data(config)
    training = build_training(config, data, device=device, rank=dist.rank, world_size=dist.world_size)
    state = RunState()
    if ckpt is not None:
        training.load_state_dict(ckpt)
        state = RunState(**ckpt["progress"])
        at = f"step {state.partial['step']} of epoch {state.epoch + 1}" if state.partial else f"epoch {state.epoch}"
        say(f"resuming {run.path} after {at}")
    state.setup_seconds += time.perf_counter() - t0
    if dist.main:
        run.write_config(config)
    shard = dict(device=device, rank=dist.rank, world_size=dist.world_size)
    train_loader = BatchLoader.from_split(train_split, config.batch_size, shuffle=True, seed=config.seed, **shard)
    val_loader = (
        BatchLoader.from_split(data.val, config.eval_batch_size, shuffle=False, device=device)
        if len(data.val)
        else None
    )
    say(
        f"{config.method} {config.model} on {config.dataset}: {len(train_split)} train, {len(data.val)} val, "
        f"{len(data.test)} test images, {config.epochs} epochs, device {device}"
    )
    loaders = dict(train_loader=train_loader, val_loader=val_loader, probe=_probe(train_split, device))
    loaders["val_batch"] = _probe(data.val, device) if len(data.val) else None  # VII along training
    if (config.compile or config.fused_noise) and state.epoch < config.epochs:
        state.compile_seconds += training.warm_up(*next(iter(train_loader.batches())))
    monitor = Monitor(run, data.val, device, start=state.epoch) if config.tensorboard and dist.main else None
    try:
        _train_epochs(run, training, state, **loaders, dist=dist, progress=progress, say=say, monitor=monitor)
    finally:
        if monitor is not None:
            monitor.close()
    end_distributed(dist)
    if not dist.main:
        return {}
    result = _result(run, training, data, state=state, train_images=len(train_split), device=device, dist=dist)
    run.write_result(result)
    if not state.best_eligible:
        say(f"no epoch ended at the method's full strength (eps warm-up): {RunDir.BEST} is epoch {state.best_epoch}")
    say(f"test accuracy {result['test_accuracy']:.4f}, VII {result['vii']:.4f} (best epoch {state.best_epoch})")
    return result


def _probe(split, device, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images evenly spaced over the split (``Split.spread``: every class, also for a split stored
    class by class), float in [0, 1], and labels: the fixed batches checked after each epoch (of the
    training split by the method, of the validation split for ``val_vii``)."""
    batch = split.spread(n)
    return batch.images.to(device).float().div_(255), batch.labels.to(device)


def _train_epochs(
    run: RunDir,
    training: Training,
    state: RunState,
    *,
    train_loader,
    val_loader,
    probe,
    val_batch,
    dist,
    progress,
    say,
    monitor,
):
    """The epochs left: train, reduce over ranks, stop on divergence, step the schedule, record
    (main process), and stop with a checkpoint on SIGINT/SIGTERM or when the method asks."""
    config = training.config
    checkpoint = (lambda v: save_last(run, training, state, v)) if dist.main else None
    with StopOnSignal() as stop:
        for epoch in range(state.epoch, config.epochs):
            if state.stopped:  # stopped early before (a resumed run stays stopped)
                break
            totals, seconds = train_epoch(
                training,
                train_loader,
                epoch=epoch,
                state=state,
                stop=stop,
                checkpoint=checkpoint,
                progress=progress and dist.main,
            )
            totals = reduce_totals(totals, dist.world_size)
            if totals[3] >= 0:
                raise FloatingPointError(
                    f"training diverged: the loss became NaN or Inf in epoch {epoch + 1}, step {int(totals[3]) + 1}; "
                    f"{run.file(run.LAST)} keeps the last good epoch ({state.epoch})"
                )
            lr = training.optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
            training.scheduler.step()
            state.epoch, state.partial = epoch + 1, None
            state.train_seconds += seconds
            if dist.main:
                row = end_epoch(
                    run,
                    training,
                    state,
                    totals=totals,
                    seconds=seconds,
                    lr=lr,
                    val_loader=val_loader,
                    probe=probe,
                    val_batch=val_batch,
                )
                if monitor is not None:
                    monitor.epoch(training.model, row, last=epoch + 1 == config.epochs)
                say(
                    f"epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, train acc "
                    f"{row['train_accuracy']:.4f}, val acc {row['val_accuracy']:.4f}, {seconds:.1f}s "
                    f"({row['samples_per_s']:.0f} samples/s)"
                )
            if _stopped_early(state, dist.world_size):
                reason = state.stopped["reason"]
                say(f"stopped after epoch {epoch + 1}: {reason}; {RunDir.BEST} keeps the best epoch before")
                break
            if stop.requested:
                raise stop.interrupted(f"after epoch {epoch + 1}; continue with --resume")


def _stopped_early(state: RunState, world_size: int) -> bool:
    """Whether the method stopped training (decided on rank 0, told to every rank)."""
    stopped = broadcast_flag(state.stopped is not None, world_size)
    if stopped and state.stopped is None:  # another rank's view: record it the same way
        state.stopped = {"epoch": state.epoch, "reason": "stopped by rank 0"}
    return stopped


def _result(run: RunDir, training: Training, data, *, state: RunState, train_images: int, device, dist) -> dict:
    """result.json's content: best.pt evaluated on the test set (with robust accuracy for methods
    that train against a threat, or when robust_images asks), and how the run went (no settings:
    those are in config.json)."""
    config = training.config
    threat = training.method.threat
    images = config.robust_images if config.robust_images is not None else (1000 if threat is not None else 0)
    eps, norm = threat if threat is not None else (None, "linf")
    best = run.load_model(device=device)
    evaluation = evaluate(
        best, data, batch_size=config.eval_batch_size, device=device, robust=images > 0, eps=eps, norm=norm,
        robust_images=images,
    )  # fmt: skip
    stopped = {"stopped_epoch": state.stopped["epoch"], "stop_reason": state.stopped["reason"]} if state.stopped else {}
    return {
        **evaluation,
        **stopped,
        "best_epoch": state.best_epoch,
        "best_eligible": state.best_eligible,
        "val_accuracy": state.best_val,
        "train_seconds": state.train_seconds,
        "setup_seconds": state.setup_seconds,
        "compile_seconds": state.compile_seconds,
        "train_images": train_images,
        "train_device": str(device),
        "world_size": dist.world_size,
        "git_sha": git_sha(),
        "versions": versions(),
    }

"""The run directory's checkpoint policy: resume or refuse, last.pt after every epoch, and which
epoch becomes best.pt."""

from __future__ import annotations

import dataclasses
import time

from torch import nn

from ..config import TrainConfig, settings
from ..metrics import accuracy, vii
from ..rundir import RunDir, RunDirError
from .build import Training
from .epoch import RunState

__all__ = ["check_run_dir", "end_epoch", "save_last", "validate"]


def validate(model: nn.Module, loader) -> float:
    """Accuracy of ``model`` on the validation loader; NaN without a validation split (``None``)."""
    return accuracy(model, loader) if loader is not None else float("nan")


def check_run_dir(run: RunDir, config: TrainConfig, resume: bool) -> dict | None:
    """Return the checkpoint to resume from, or None for a fresh run; refuse to clobber a run.
    A resume may change the runtime settings and those marked ``resume_may_change`` (epochs)."""
    if resume:
        if not run.has_checkpoint():
            raise RunDirError(f"--resume: no checkpoint to resume in {run.path} (expected {run.file(run.LAST)})")
        ckpt = run.read_checkpoint("last")
        saved = TrainConfig.from_dict(ckpt["config"], saved=True)
        fixed = [s.name for s in settings() if not (s.runtime or s.resume_may_change)]
        diff = [
            f"{k}: {getattr(saved, k)!r} in the run vs {getattr(config, k)!r} now"
            for k in fixed
            if getattr(saved, k) != getattr(config, k)
        ]
        if diff:
            raise RunDirError(f"--resume: the settings differ from the run in {run.path}: {', '.join(diff)}")
        return ckpt
    if run.has_checkpoint() or run.is_complete():
        raise RunDirError(f"run directory {run.path} already holds a run; use --resume or another --out")
    return None


def save_last(run: RunDir, training: Training, state: RunState, val_acc: float) -> None:
    """last.pt: the model, the optimizer, schedule and RNG states, and ``state``."""
    record = RunDir.model_record(training.config, training.model, state.epoch, val_acc)
    run.write_checkpoint("last", {**record, **training.state_dict(), "progress": dataclasses.asdict(state)})


def end_epoch(
    run: RunDir,
    training: Training,
    state: RunState,
    *,
    totals: list,
    seconds: float,
    lr: float,
    val_loader,
    probe,
    val_batch=None,
) -> dict:
    """Record a finished epoch (main process): validation, the method's check (which may stop
    training: then this epoch cannot become best.pt), metrics.csv, best.pt and last.pt.

    best.pt is the epoch with the best validation accuracy (the paper's protocol; without a
    validation split, the last epoch) among the eligible epochs (:class:`~noisemod.methods.EpochCheck`);
    an eligible epoch replaces an ineligible best.pt whatever its accuracy, so ineligible (warm-up)
    epochs are kept only while no eligible epoch exists. ``val_batch`` (images in [0, 1], labels): a
    fixed validation batch whose VII (x_bar its mean) goes into the row as ``val_vii``, so VII along
    training is in every run's metrics.csv. Returns the epoch's metrics.csv row."""
    t0 = time.perf_counter()
    loss_total, correct_total, seen_total, _ = totals
    val_acc = validate(training.model, val_loader)
    check = training.method.end_epoch(training.model, probe, state.history)
    row = {
        "epoch": state.epoch,
        "train_loss": loss_total / seen_total,
        "train_accuracy": correct_total / seen_total,
        "val_accuracy": val_acc,
        "seconds": seconds,
        "samples_per_s": seen_total / seconds,
        "lr": lr,
        **check.metrics,
    }
    if val_batch is not None:
        row["val_vii"] = vii(training.model, *val_batch)
    state.history.append(row)
    if check.stop:
        state.stopped = {"epoch": state.epoch, "reason": check.stop}
    elif _better(state, val_acc, check.eligible, has_val=val_loader is not None):
        state.best_val, state.best_epoch, state.best_eligible = val_acc, state.epoch, check.eligible
        run.write_checkpoint("best", RunDir.model_record(training.config, training.model, state.epoch, val_acc))
    save_last(run, training, state, val_acc)
    row["end_seconds"] = time.perf_counter() - t0  # this epoch's validation, check, VII and checkpoints
    run.write_metrics(state.history)
    return row


def _better(state: RunState, val_acc: float, eligible: bool, *, has_val: bool) -> bool:
    """Whether a finished epoch replaces best.pt: ranked by (eligible, validation accuracy)."""
    if state.best_epoch == 0:
        return True
    if eligible != state.best_eligible:
        return eligible
    return not has_val or val_acc > state.best_val  # without a validation split, the last epoch

"""The training loop, made of pieces: build, one epoch, validate, checkpoint, evaluate.

:func:`fit` puts them together into a run directory (:class:`noisemod.rundir.RunDir`); each piece
is public so that other loops (benchmarks, notebooks) are built from the same parts:

- :func:`load_data`, :func:`build_model`, :func:`build_optimizer`, :func:`build_scheduler`, and
  :func:`build_training`, which returns a :class:`Training` (model, trained module, method,
  optimizer, ... and ``step(x, y)``, one optimization step);
- :func:`train_epoch`: one epoch (or the rest of an interrupted one), no device sync per step;
- :func:`validate`: validation accuracy; :func:`evaluate`: test accuracy, VII, robust accuracy.

Every file is written atomically, and checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .config import TrainConfig, settings
from .methods import Method, build_method
from .metrics import accuracy, vii
from .rundir import RunDir, RunDirError, load_model

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


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # noisemod started the process group, so it shuts it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str | None = None, local_rank: int = 0) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU."""
    if name in (None, "auto"):
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"invalid device={name!r}: expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"invalid device={name!r}: CUDA is not available on this machine")
    return device


def _init_distributed(config: TrainConfig) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(config.device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(int(os.environ["RANK"]), world, local_rank, owns), device


def git_sha() -> str | None:
    """The commit of the noisemod source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import numpy
    import torchvision

    return {
        "noisemod": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------------- build


def load_data(config: TrainConfig):
    """``(data, train_split)``: the dataset of ``config`` and the training images used (a seeded
    subset of ``train_size`` images, or the whole training split)."""
    from .data import load_dataset

    data = load_dataset(config.dataset, root=config.data_root, val_size=config.val_size)
    train = data.train.subset(config.train_size, seed=config.seed) if config.train_size else data.train
    return data, train


def _loader(split, batch_size: int, device, *, shuffle: bool = False, seed: int = 0, rank: int = 0, world: int = 1):
    from .data import BatchLoader

    return BatchLoader(
        split.images, split.labels, batch_size, shuffle=shuffle, seed=seed, device=device, rank=rank, world_size=world
    )


def build_model(config: TrainConfig, data, device) -> nn.Module:
    """The zoo model of ``config`` for ``data`` (its channels, classes, size and normalization), on ``device``."""
    from .models import create_model

    model = create_model(
        config.model,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        input_size=data.input_size,
        mean=data.mean,
        std=data.std,
    )
    return model.to(device)


def build_optimizer(config: TrainConfig, params):
    """The configured optimizer, fused (one kernel for all parameters) where this torch supports
    it on this device: the same update rule, measured 12% faster per LeNet step on CPU."""
    params = list(params)
    if config.optimizer == "sgd":
        cls, kwargs = torch.optim.SGD, dict(momentum=config.momentum)
    else:
        cls, kwargs = (torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW), {}
    kwargs.update(lr=config.lr, weight_decay=config.weight_decay)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without a fused kernel
        return cls(params, **kwargs)


def build_scheduler(config: TrainConfig, optimizer):
    """The learning-rate schedule, stepped once per epoch."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@dataclass
class Training:
    """What one run trains with (built by :func:`build_training`).

    ``model`` is the plain classifier (checkpoints, attacks and evaluation use it), ``net`` the
    module trained (the method's wrapper, under DDP and ``torch.compile`` when asked), and
    ``generator`` the source of all training noise (carriers, attack starts).
    """

    config: TrainConfig
    model: nn.Module
    net: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    device: torch.device

    def __post_init__(self):
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)
        self._autocast = torch.autocast(self.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimization step on a batch; returns ``(loss, logits)`` without waiting for the device."""
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast:
            loss, logits = self.method.step(self.net, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():  # fp16
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss, logits

    def warm_up(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Compile what training compiles (``compile``, ``fused_noise``) on one batch, then put
        everything back: the weights, batch-norm statistics, gradients and RNG states are as before,
        so the run computes exactly what it would have. Returns the seconds it took."""
        t0 = time.perf_counter()
        model_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        rng = (torch.get_rng_state(), self.generator.get_state())
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.net.train()
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast:
            loss, _ = self.method.step(self.net, x, y)
        loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.load_state_dict(model_state)
        torch.set_rng_state(rng[0])
        self.generator.set_state(rng[1])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0

    def state_dict(self) -> dict:
        """The states a checkpoint keeps besides the model: optimizer, scheduler, scaler, RNGs."""
        rng = {"torch": torch.get_rng_state(), "noise": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        parts = {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}
        return {**{k: v.state_dict() for k, v in parts.items()}, "rng": rng}

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a checkpoint of :meth:`state_dict` plus ``ckpt["model"]``."""
        for key, obj in (("model", self.model), ("optimizer", self.optimizer), ("scheduler", self.scheduler)):
            obj.load_state_dict(ckpt[key])
        self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.generator.set_state(ckpt["rng"]["noise"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


def build_training(config: TrainConfig, data, *, device, rank: int = 0, world_size: int = 1) -> Training:
    """Model (seeded with ``config.seed``), method, optimizer, schedule and gradient scaler of a run.
    Under several processes the trained module is wrapped in DistributedDataParallel, and each
    rank draws its own noise (its generator is seeded with the seed and the rank)."""
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = build_model(config, data, device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed((config.seed << 16) + rank)
    method = build_method(config, model, generator)
    net = method.wrap(model)
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:  # the module trained; checkpoints, attacks and evaluation use the plain model
        net = torch.compile(net)
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    return Training(config, model, net, method, optimizer, scheduler, scaler, generator, device)


# ----------------------------------------------------------------------------- one epoch


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after a resumable checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class _StopOnSignal:
    """While active (main thread only), SIGINT and SIGTERM set ``requested`` instead of killing the
    process, so the loop can write a checkpoint first; a second signal interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.requested, self._previous = None, {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class RunState:
    """Where training stands: what ``last.pt`` records besides the model and optimizer states."""

    epoch: int = 0  # completed epochs
    best_val: float = -1.0
    best_epoch: int = 0
    best_eligible: bool = True  # whether best.pt's epoch was eligible (EpochCheck); True in checkpoints before it
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    partial: dict | None = None  # an interrupted epoch: next step, running sums, seconds
    stopped: dict | None = None  # training stopped early: {"epoch", "reason"}
    setup_seconds: float = 0.0  # one-time costs, summed over the processes that trained the run
    compile_seconds: float = 0.0


@dataclass
class _StepRecords:
    """The steps of an epoch so far: each step's mean loss and correct count (device scalars, so
    recording them never waits for the device) and batch size. An interrupted epoch keeps them
    in its checkpoint, so the resumed epoch reduces exactly the same numbers in the same order."""

    losses: list = field(default_factory=list)
    correct: list = field(default_factory=list)
    sizes: list = field(default_factory=list)

    @classmethod
    def restore(cls, partial: dict, device) -> _StepRecords:
        if "losses" not in partial:
            return cls()
        return cls(
            list(partial["losses"].to(device).unbind()),
            list(partial["correct"].to(device).unbind()),
            list(partial["sizes"]),
        )

    def add(self, loss, logits, y) -> None:
        self.losses.append(loss.detach())
        self.correct.append((logits.detach().argmax(1) == y).sum())
        self.sizes.append(len(y))

    def to_state(self) -> dict:
        return {
            "losses": torch.stack(self.losses).cpu(),
            "correct": torch.stack(self.correct).cpu(),
            "sizes": list(self.sizes),
        }

    def totals(self, device) -> torch.Tensor:
        """``[loss sum, correct, seen, first non-finite step or -1]`` as one float32 device tensor."""
        if not self.losses:
            return torch.tensor([0.0, 0.0, 0.0, -1.0], device=device)
        losses = torch.stack(self.losses).float()
        sizes = torch.tensor(self.sizes, dtype=torch.float32, device=losses.device)
        steps = torch.arange(len(losses), dtype=torch.float32, device=losses.device)
        bad = torch.where(torch.isfinite(losses), float(len(losses)), steps).min()
        first_bad = torch.where(bad < len(losses), bad, -1.0)
        totals = [(losses * sizes).sum(), torch.stack(self.correct).sum().float(), sizes.sum(), first_bad]
        return torch.stack(totals).to(device)


def train_epoch(
    training: Training,
    loader,
    *,
    epoch: int,
    state: RunState | None = None,
    stop=None,
    checkpoint: Callable[[float], None] | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, float]:
    """Train one epoch (0-based ``epoch``), or the rest of the interrupted one in ``state.partial``.

    Returns the device tensor ``[loss sum, correct, seen, first bad step or -1]`` and the seconds
    spent. Nothing here synchronizes with the device: each step only records its loss and correct
    count, reduced once at the end, where divergence is found too. When ``stop.requested`` is set
    (a signal), the position in the epoch goes into ``state.partial``, ``checkpoint(nan)`` writes
    it (unless the epoch diverged) and :class:`TrainingInterrupted` is raised.
    """
    state = state if state is not None else RunState()
    loader.set_epoch(epoch)
    training.net.train()
    partial = state.partial or {}
    first = partial.get("step", 0)
    records = _StepRecords.restore(partial, training.device)
    t0 = time.perf_counter() - partial.get("seconds", 0.0)
    batches = loader.batches(first)
    if progress:
        batches = _bar(batches, f"epoch {epoch + 1}/{training.config.epochs}", total=len(loader), initial=first)
    steps = len(loader)
    for step, (x, y) in enumerate(batches, start=first):
        training.method.set_progress(epoch + (step + 1) / steps)
        loss, logits = training.step(x, y)
        records.add(loss, logits, y)
        if stop is not None and stop.requested:
            if checkpoint is not None and records.totals(training.device)[3] < 0:  # never checkpoint a diverged model
                state.partial = {"step": step + 1, **records.to_state(), "seconds": time.perf_counter() - t0}
                checkpoint(float("nan"))
            name = signal.Signals(stop.requested).name
            raise TrainingInterrupted(
                f"interrupted by {name} at step {step + 1} of epoch {epoch + 1}; a resumable checkpoint is in "
                f"{RunDir.LAST}: continue with --resume",
                stop.requested,
            )
    return records.totals(training.device), time.perf_counter() - t0


def validate(model: nn.Module, loader) -> float:
    """Accuracy of ``model`` on the validation loader; NaN without a validation split (``None``)."""
    return accuracy(model, loader) if loader is not None else float("nan")


# ----------------------------------------------------------------------------- checkpoint and fit


def _check_run_dir(run: RunDir, config: TrainConfig, resume: bool) -> dict | None:
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


def _save_last(run: RunDir, training: Training, state: RunState, val_acc: float) -> None:
    record = RunDir.model_record(training.config, training.model, state.epoch, val_acc)
    run.write_checkpoint("last", {**record, **training.state_dict(), "progress": dataclasses.asdict(state)})


def _end_epoch(
    run: RunDir, training: Training, state: RunState, *, totals: list, seconds: float, lr: float, val_loader, probe
) -> dict:
    """Record a finished epoch (main process): validation, the method's check (which may stop
    training: then this epoch cannot become best.pt), metrics.csv, best.pt and last.pt.

    best.pt is the epoch with the best validation accuracy (the paper's protocol; without a
    validation split, the last epoch) among the eligible epochs (:class:`EpochCheck`); an eligible
    epoch replaces an ineligible best.pt whatever its accuracy, so ineligible (warm-up) epochs are
    kept only while no eligible epoch exists."""
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
    state.history.append(row)
    if check.stop:
        state.stopped = {"epoch": state.epoch, "reason": check.stop}
    elif _better(state, val_acc, check.eligible, has_val=val_loader is not None):
        state.best_val, state.best_epoch, state.best_eligible = val_acc, state.epoch, check.eligible
        run.write_checkpoint("best", RunDir.model_record(training.config, training.model, state.epoch, val_acc))
    _save_last(run, training, state, val_acc)
    run.write_metrics(state.history)
    return row


def _better(state: RunState, val_acc: float, eligible: bool, *, has_val: bool) -> bool:
    """Whether a finished epoch replaces best.pt: ranked by (eligible, validation accuracy)."""
    if state.best_epoch == 0:
        return True
    if eligible != state.best_eligible:
        return eligible
    return not has_val or val_acc > state.best_val  # without a validation split, the last epoch


def _reduce(totals: torch.Tensor, world_size: int) -> list[float]:
    """Sum the epoch's totals over ranks (the first bad step: the max, -1 unless some rank had one)."""
    if world_size > 1:
        torch.distributed.all_reduce(totals[:3])
        torch.distributed.all_reduce(totals[3:], op=torch.distributed.ReduceOp.MAX)
    return totals.tolist()  # one sync per epoch


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
    dist, device = _init_distributed(config)
    ckpt = _check_run_dir(run, config, resume) if dist.main else (run.read_checkpoint("last") if resume else None)
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
    shard = dict(rank=dist.rank, world=dist.world_size)
    train_loader = _loader(train_split, config.batch_size, device, shuffle=True, seed=config.seed, **shard)
    val_loader = _loader(data.val, config.eval_batch_size, device) if len(data.val) else None
    say(
        f"{config.method} {config.model} on {config.dataset}: {len(train_split)} train, {len(data.val)} val, "
        f"{len(data.test)} test images, {config.epochs} epochs, device {device}"
    )
    probe = _probe(train_split, device)
    if (config.compile or config.fused_noise) and state.epoch < config.epochs:
        x, y = next(iter(train_loader.batches()))
        state.compile_seconds += training.warm_up(x, y)
    loaders = dict(train_loader=train_loader, val_loader=val_loader, probe=probe)
    monitor = Monitor(run, data.val, device, start=state.epoch) if config.tensorboard and dist.main else None
    try:
        _train_epochs(run, training, state, **loaders, dist=dist, progress=progress, say=say, monitor=monitor)
    finally:
        if monitor is not None:
            monitor.close()
    _end_distributed(dist)
    if not dist.main:
        return {}
    result = _result(run, training, data, state=state, train_images=len(train_split), device=device, dist=dist)
    run.write_result(result)
    if not state.best_eligible:
        say(f"no epoch ended at the method's full strength (eps warm-up): {RunDir.BEST} is epoch {state.best_epoch}")
    say(f"test accuracy {result['test_accuracy']:.4f}, VII {result['vii']:.4f} (best epoch {state.best_epoch})")
    return result


def _probe(split, device, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images evenly spaced over the split (``Split.spread``: every class, also for a split
    stored class by class), float in [0, 1], and labels: the fixed batch methods check after each epoch."""
    batch = split.spread(n)
    return batch.images.to(device).float().div_(255), batch.labels.to(device)


def _train_epochs(
    run: RunDir, training: Training, state: RunState, *, train_loader, val_loader, probe, dist, progress, say, monitor
):
    """The epochs left: train, reduce over ranks, stop on divergence, step the schedule, record
    (main process), and stop with a checkpoint on SIGINT/SIGTERM or when the method asks."""
    config = training.config
    with _StopOnSignal() as stop:
        for epoch in range(state.epoch, config.epochs):
            if state.stopped:  # stopped early before (a resumed run stays stopped)
                break
            totals, seconds = train_epoch(
                training,
                train_loader,
                epoch=epoch,
                state=state,
                stop=stop,
                checkpoint=(lambda v: _save_last(run, training, state, v)) if dist.main else None,
                progress=progress and dist.main,
            )
            totals = _reduce(totals, dist.world_size)
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
                row = _end_epoch(
                    run, training, state, totals=totals, seconds=seconds, lr=lr, val_loader=val_loader, probe=probe
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
                raise TrainingInterrupted(
                    f"interrupted by {signal.Signals(stop.requested).name} after epoch {epoch + 1}; continue with "
                    "--resume",
                    stop.requested,
                )


class Monitor:
    """TensorBoard event files in ``RUN_DIR/tensorboard`` (``torch.utils.tensorboard``): per epoch the
    train loss and accuracy, validation accuracy, the VII of a fixed validation batch (256 images evenly
    spaced over the split, ``Split.spread``; x_bar their mean), and every ``every`` epochs (and the first
    and last) a grid of 8 of them (evenly spaced over the batch) above their input-gradient maps, each
    scaled to [0, 1]. A resumed run drops the events
    after its checkpoint (``purge_step``), so curves are never doubled."""

    def __init__(self, run: RunDir, val, device, *, start: int = 0, every: int = 5, images: int = 256):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.file(run.TENSORBOARD)), purge_step=start + 1)
        self.every = every
        batch = val.spread(images) if len(val) else None
        self.x = batch.images.to(device).float().div_(255) if batch is not None else None
        self.y = batch.labels.to(device) if batch is not None else None

    def epoch(self, model: nn.Module, row: dict, *, last: bool = False) -> None:
        step = row["epoch"]
        scalars = {"loss/train": "train_loss", "accuracy/train": "train_accuracy"}
        scalars.update({"accuracy/validation": "val_accuracy", "lr": "lr"})
        for tag, key in scalars.items():
            self.writer.add_scalar(tag, row[key], step)
        if "probe_robust_accuracy" in row:
            self.writer.add_scalar("accuracy/probe_robust", row["probe_robust_accuracy"], step)
        if self.x is None:
            return
        self.writer.add_scalar("vii/validation_batch", vii(model, self.x, self.y), step)
        if step % self.every == 0 or step == 1 or last:
            from torchvision.utils import make_grid

            from .gradients import input_gradients
            from .plots import scale01

            pick = torch.arange(8, device=self.x.device) * len(self.x) // 8 if len(self.x) >= 8 else slice(None)
            x, y = self.x[pick], self.y[pick]
            maps = torch.cat([x, scale01(input_gradients(model, x, y))]).cpu()
            self.writer.add_image("input-gradients", make_grid(maps, nrow=8, pad_value=1.0), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _stopped_early(state: RunState, world_size: int) -> bool:
    """Whether the method stopped training (decided on rank 0, told to every rank)."""
    stopped = state.stopped is not None
    if world_size > 1:
        flag = torch.tensor([float(stopped)], device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.broadcast(flag, 0)
        stopped = bool(flag.item())
        if stopped and state.stopped is None:  # another rank's view: record it the same way
            state.stopped = {"epoch": state.epoch, "reason": "stopped by rank 0"}
    return stopped


def _end_distributed(dist: Dist) -> None:
    if dist.world_size > 1:
        torch.distributed.barrier()
        if dist.owns_group:  # shut it down on every rank before any exits (a live gloo group aborts at exit)
            torch.distributed.destroy_process_group()


def _result(run: RunDir, training: Training, data, *, state: RunState, train_images: int, device, dist) -> dict:
    """result.json's content: best.pt evaluated on the test set (with robust accuracy for methods
    that train against a threat, or when robust_images asks), and how the run went (no settings:
    those are in config.json)."""
    config = training.config
    best = run.load_model(device=device)
    threat = training.method.threat
    images = config.robust_images if config.robust_images is not None else (1000 if threat is not None else 0)
    eps, norm = threat if threat is not None else (None, "linf")
    evaluation = evaluate(
        best,
        data,
        batch_size=config.eval_batch_size,
        device=device,
        robust=images > 0,
        eps=eps,
        norm=norm,
        robust_images=images,
    )
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


# ----------------------------------------------------------------------------- evaluate


class _ProgressBar:
    """A re-iterable progress bar (tqdm, with ETA) over a loader: each pass gets its own bar."""

    def __init__(self, iterable, desc: str):
        self.iterable, self.desc = iterable, desc

    def __len__(self):
        return len(self.iterable)

    def __iter__(self):
        return iter(_bar(self.iterable, self.desc))


def _bar(iterable, desc: str, **kwargs):
    """A tqdm progress bar with ETA that disappears when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, **kwargs)


def _progress(iterable, enabled: bool, desc: str):
    return _ProgressBar(iterable, desc) if enabled else iterable


def evaluate(
    model: nn.Module,
    data,
    config: TrainConfig | None = None,
    *,
    batch_size: int = 512,
    robust: bool = False,
    norm: str = "linf",
    eps: float | None = None,
    robust_images: int | None = None,
    device=None,
    progress: bool = False,
) -> dict:
    """Test accuracy and VII (x_bar = the mean test image) of ``model`` on ``data.test``.

    Args:
        model: a classifier taking [0, 1] inputs of the data's shape.
        data: a :class:`~noisemod.data.DataBundle`.
        config: deprecated; give ``batch_size`` and ``norm`` instead.
        batch_size: evaluation batch size.
        robust: also the accuracy under :func:`noisemod.attacks.evaluation_attack` (PGD-50,
            random start) in the threat model ``norm`` with radius ``eps`` (default: the
            dataset's PGD eps, :func:`noisemod.attacks.attack_defaults`), on the first
            ``robust_images`` test images (default: all).
        device: where to evaluate (default: the model's device).
        progress: show progress bars.

    Returns:
        ``{"test_accuracy", "vii"}``, and with ``robust`` ``"robust_accuracy"`` and ``"robust_attack"``.
    """
    from .gradients import model_device

    if config is not None:
        warnings.warn(
            "evaluate(model, data, config) is deprecated: pass batch_size= and norm=", DeprecationWarning, stacklevel=2
        )
        batch_size, norm = config.eval_batch_size, config.norm
    device = device or model_device(model)
    _check_shape(model, data)
    test = _loader(data.test, batch_size, device)
    result = {
        "test_accuracy": accuracy(model, _progress(test, progress, "test accuracy")),
        "vii": vii(model, _progress(test, progress, "VII")),
    }
    if robust:
        result.update(
            _robust(
                model,
                data,
                norm=norm,
                eps=eps,
                images=robust_images,
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
        )
    return result


def _robust(model: nn.Module, data, *, norm: str, eps: float | None, images: int | None, batch_size, device, progress):
    from .attacks import attack_defaults, evaluation_attack, robust_accuracy

    eps = attack_defaults("pgd", data.name)["eps"] if eps is None else eps
    n = len(data.test) if images is None else min(images, len(data.test))
    described = {"method": "pgd", "norm": norm, "eps": eps, "steps": None, "alpha": None, "images": n}
    if eps <= 0 or n == 0:  # no attack: nothing to measure
        return {"robust_accuracy": None, "robust_attack": described}
    attack = evaluation_attack(model, eps=eps, norm=norm, generator=torch.Generator(device=device).manual_seed(0))
    split = data.test if n == len(data.test) else data.test.take(torch.arange(n))
    loader = _loader(split, batch_size, device)
    accuracy_ = robust_accuracy(model, _progress(loader, progress, "PGD"), attack=attack)
    return {"robust_accuracy": accuracy_, "robust_attack": {**described, "steps": attack.steps, "alpha": attack.alpha}}


def _check_shape(model: nn.Module, data) -> None:
    spec = getattr(model, "spec", {})
    expected = (spec.get("in_channels"), *(spec.get("input_size") or ()))
    actual = (data.in_channels, *data.input_size)
    if spec.get("name") not in (None, "custom") and expected != actual:
        raise ValueError(
            f"the model takes {'x'.join(map(str, expected))} inputs but {data.name} images are "
            f"{'x'.join(map(str, actual))}"
        )

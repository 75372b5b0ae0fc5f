"""The training loop: fit, evaluate, checkpoint; nothing else.

A run directory holds::

    config.json    the resolved TrainConfig
    metrics.csv    one row per epoch: train loss/accuracy, validation accuracy, seconds, samples/s, lr
    last.pt        everything needed to resume (model, optimizer, scheduler, RNG states, history)
    best.pt        the model with the best validation accuracy, with its config and spec
    result.json    test accuracy and VII of best.pt, timings, versions, git SHA

Every file is written atomically, and checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .config import RUNTIME_FIELDS, TrainConfig
from .io import atomic_write, load_checkpoint, read_json, save_checkpoint, write_json
from .methods import build_method
from .metrics import accuracy, vii

__all__ = ["RunDirError", "TrainingInterrupted", "evaluate", "fit", "load_model", "resolve_device"]

CHECKPOINT_FORMAT = "noisemod-checkpoint/1"
METRIC_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_accuracy", "seconds", "samples_per_s", "lr")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists already, or is not a run)."""


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


def _load_data(config: TrainConfig):
    from .data import load_dataset

    data = load_dataset(config.dataset, root=config.data_root, val_size=config.val_size)
    train = data.train.subset(config.train_size, seed=config.seed) if config.train_size else data.train
    return data, train


def _loader(split, batch_size, device, *, shuffle=False, seed=0, dist=Dist()):
    from .data import BatchLoader

    return BatchLoader(
        split.images,
        split.labels,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        device=device,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def _build_model(config: TrainConfig, data, device) -> nn.Module:
    from .models import create_model

    return create_model(
        config.model,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        input_size=data.input_size,
        mean=data.mean,
        std=data.std,
    ).to(device)


def _optimizer(config: TrainConfig, params):
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


def _scheduler(config: TrainConfig, optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _rng_state(generator) -> dict:
    state = {"torch": torch.get_rng_state(), "noise": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_metrics(path: Path, history: list[dict]) -> None:
    def write(f):
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(history)

    atomic_write(path, write, "w")


def _check_run_dir(out: Path, config: TrainConfig, resume: bool) -> dict | None:
    """Return the checkpoint to resume from, or None for a fresh run; refuse to clobber a run."""
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise RunDirError(f"--resume: no checkpoint to resume in {out} (expected {last})")
        ckpt = load_checkpoint(last)
        saved = TrainConfig.from_dict(ckpt["config"])
        diff = {
            k: (v, getattr(config, k))
            for k, v in saved.to_dict().items()
            if k != "epochs" and k not in RUNTIME_FIELDS and getattr(config, k) != v
        }
        if diff:
            detail = ", ".join(f"{k}: {a!r} in the run vs {b!r} now" for k, (a, b) in diff.items())
            raise RunDirError(f"--resume: the settings differ from the run in {out}: {detail}")
        return ckpt
    if last.exists() or (out / "result.json").exists():
        raise RunDirError(f"run directory {out} already holds a run; use --resume or another --out")
    return None


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
class _RunState:
    """Where training stands: what ``last.pt`` records besides the model and optimizer states."""

    epoch: int = 0  # completed epochs
    best_val: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    partial: dict | None = None  # an interrupted epoch: next step, running sums, seconds


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
    out = Path(out)
    dist_info, device = _init_distributed(config)
    ckpt = (
        _check_run_dir(out, config, resume)
        if dist_info.main
        else (load_checkpoint(out / "last.pt") if resume else None)
    )
    say = log if dist_info.main else (lambda *_: None)

    data, train_split = _load_data(config)
    torch.manual_seed(config.seed)
    model = _build_model(config, data, device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed((config.seed << 16) + dist_info.rank)
    method = build_method(config, model, generator)
    net = method.wrap(model)
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:  # the module trained; checkpoints, attacks and evaluation use the plain model
        net = torch.compile(net)
    optimizer = _optimizer(config, model.parameters())
    scheduler = _scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}

    state = _RunState()
    if ckpt is not None:
        for key, obj in stateful.items():
            obj.load_state_dict(ckpt[key])
        _set_rng_state(ckpt["rng"], generator)
        state = _RunState(**ckpt["progress"])
        at = f"step {state.partial['step']} of epoch {state.epoch + 1}" if state.partial else f"epoch {state.epoch}"
        say(f"resuming {out} after {at}")
    if dist_info.main:
        write_json(out / "config.json", config.to_dict())

    def save_last(val_acc: float) -> None:
        save_checkpoint(
            {
                **_model_record(config, model, state.epoch, val_acc),
                **{k: v.state_dict() for k, v in stateful.items() if k != "model"},
                "rng": _rng_state(generator),
                "progress": dataclasses.asdict(state),
            },
            out / "last.pt",
        )

    train_loader = _loader(train_split, config.batch_size, device, shuffle=True, seed=config.seed, dist=dist_info)
    val_loader = _loader(data.val, config.eval_batch_size, device) if len(data.val) else None
    say(
        f"{config.method} {config.model} on {config.dataset}: {len(train_split)} train, {len(data.val)} val, "
        f"{len(data.test)} test images, {config.epochs} epochs, device {device}"
    )

    with _StopOnSignal() as stop:
        for epoch in range(state.epoch, config.epochs):
            totals, seconds = _train_epoch(
                config,
                method,
                net,
                optimizer,
                scaler,
                train_loader,
                epoch,
                state,
                stop,
                device,
                save_last if dist_info.main else None,
                progress and dist_info.main,
            )
            if dist_info.world_size > 1:  # sums over ranks; the first bad step is -1 unless some rank had one
                torch.distributed.all_reduce(totals[:3])
                torch.distributed.all_reduce(totals[3:], op=torch.distributed.ReduceOp.MAX)
            loss_total, correct_total, seen_total, bad_step = totals.tolist()  # one sync per epoch
            if bad_step >= 0:
                raise FloatingPointError(
                    f"training diverged: the loss became NaN or Inf in epoch {epoch + 1}, step {int(bad_step) + 1}; "
                    f"{out / 'last.pt'} keeps the last good epoch ({state.epoch})"
                )
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            state.epoch, state.partial = epoch + 1, None
            state.train_seconds += seconds
            if dist_info.main:
                val_acc = accuracy(model, val_loader) if val_loader is not None else float("nan")
                row = {
                    "epoch": epoch + 1,
                    "train_loss": loss_total / seen_total,
                    "train_accuracy": correct_total / seen_total,
                    "val_accuracy": val_acc,
                    "seconds": seconds,
                    "samples_per_s": seen_total / seconds,
                    "lr": lr,
                }
                state.history.append(row)
                # best by validation accuracy; without a validation split, the last epoch
                if val_loader is None or val_acc > state.best_val:
                    state.best_val, state.best_epoch = val_acc, epoch + 1
                    save_checkpoint(_model_record(config, model, epoch + 1, val_acc), out / "best.pt")
                save_last(val_acc)
                _write_metrics(out / "metrics.csv", state.history)
                say(
                    f"epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, "
                    f"train acc {row['train_accuracy']:.4f}, val acc {val_acc:.4f}, {seconds:.1f}s "
                    f"({row['samples_per_s']:.0f} samples/s)"
                )
            if stop.requested:
                raise TrainingInterrupted(
                    f"interrupted by {signal.Signals(stop.requested).name} after epoch "
                    f"{epoch + 1}; continue with --resume",
                    stop.requested,
                )

    if dist_info.world_size > 1:
        torch.distributed.barrier()
        if dist_info.owns_group:  # shut it down on every rank before any exits (a live gloo group aborts at exit)
            torch.distributed.destroy_process_group()
    if not dist_info.main:
        return {}
    best = load_model(out, device=device)
    metrics = evaluate(best, data, config, device=device, progress=progress)
    result = {
        **metrics,
        "best_epoch": state.best_epoch,
        "val_accuracy": state.best_val,
        "epochs": config.epochs,
        "train_seconds": state.train_seconds,
        "method": config.method,
        "model": config.model,
        "dataset": config.dataset,
        "seed": config.seed,
        "beta": config.beta,
        "noise": config.noise,
        "train_size": len(train_split),
        "device": str(device),
        "world_size": dist_info.world_size,
        "git_sha": git_sha(),
        "versions": versions(),
    }
    write_json(out / "result.json", result)
    say(f"test accuracy {result['test_accuracy']:.4f}, VII {result['vii']:.4f} (best epoch {state.best_epoch})")
    return result


def _train_epoch(config, method, net, optimizer, scaler, loader, epoch, state, stop, device, save_last, progress):
    """One epoch (or the rest of an interrupted one). Returns the device tensor
    ``[loss sum, correct, seen, first bad step or -1]`` and the seconds spent. Nothing here
    synchronizes with the device: each step only appends its loss and correct count (device
    scalars) to a list, reduced once at the end, where divergence is found too."""
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    loader.set_epoch(epoch)
    net.train()
    partial = state.partial or {}
    first = partial.get("step", 0)
    records = _StepRecords.restore(partial, device)
    t0 = time.perf_counter() - partial.get("seconds", 0.0)
    batches = loader.batches(first)
    if progress:
        batches = _bar(batches, f"epoch {epoch + 1}/{config.epochs}", total=len(loader), initial=first)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    for step, (x, y) in enumerate(batches, start=first):
        if config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, logits = method.step(net, x, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():  # fp16
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        records.add(loss, logits, y)
        if stop.requested:
            if save_last is not None and records.totals(device)[3] < 0:  # never checkpoint a diverged model
                state.partial = {"step": step + 1, **records.to_state(), "seconds": time.perf_counter() - t0}
                save_last(float("nan"))
            raise TrainingInterrupted(
                f"interrupted by {signal.Signals(stop.requested).name} at step {step + 1} of "
                f"epoch {epoch + 1}; a resumable checkpoint is in last.pt: continue with "
                "--resume",
                stop.requested,
            )
    return records.totals(device), time.perf_counter() - t0


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
        return torch.stack(
            [(losses * sizes).sum(), torch.stack(self.correct).sum().float(), sizes.sum(), first_bad]
        ).to(device)


def _model_record(config: TrainConfig, model: nn.Module, epoch: int, val_acc: float) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "model_spec": model.spec,
        "model": model.state_dict(),
        "epoch": epoch,
        "val_accuracy": val_acc,
    }


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
    model: nn.Module, data, config: TrainConfig, *, device=None, robust: bool = False, progress: bool = False
) -> dict:
    """Test accuracy and VII (x_bar = mean test image) of ``model``; with ``robust=True`` also the
    accuracy under the config's PGD attack (per-dataset defaults, see :mod:`noisemod.attacks`)."""
    from .gradients import model_device

    device = device or model_device(model)
    spec = getattr(model, "spec", {})
    expected = (spec.get("in_channels"), *(spec.get("input_size") or ()))
    if spec.get("name") not in (None, "custom") and expected != (data.in_channels, *data.input_size):
        raise ValueError(
            f"the model takes {'x'.join(map(str, expected))} inputs but {config.dataset} images are "
            f"{'x'.join(map(str, (data.in_channels, *data.input_size)))}"
        )
    test = _loader(data.test, config.eval_batch_size, device)
    result = {
        "test_accuracy": accuracy(model, _progress(test, progress, "test accuracy")),
        "vii": vii(model, _progress(test, progress, "VII")),
    }
    if robust:
        from .attacks import PGD, attack_defaults, robust_accuracy

        settings = attack_defaults("pgd", config.dataset)
        attack = PGD(
            model,
            norm=config.norm,
            random_start=True,
            generator=torch.Generator(device=device).manual_seed(0),
            **settings,
        )
        result["robust_accuracy"] = robust_accuracy(model, _progress(test, progress, "PGD"), attack=attack)
        result["robust_attack"] = {"method": "pgd", "norm": config.norm, **settings}
    return result


def load_model(run_dir, *, checkpoint: str = "best", device=None) -> nn.Module:
    """The model of a run directory (its best checkpoint by default), in eval mode, taking inputs
    in [0, 1]. Needs nothing but the run directory and the library."""
    from .models import create_model

    path = Path(run_dir) / f"{checkpoint}.pt"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a finished noisemod run: {path} is missing")
    ckpt = load_checkpoint(path)
    model = create_model(**ckpt["model_spec"])
    model.load_state_dict(ckpt["model"])
    return model.to(device or "cpu").eval()


def run_config(run_dir) -> TrainConfig:
    """The TrainConfig a run directory was trained with."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a noisemod run directory: {path} is missing")
    return TrainConfig.from_dict(read_json(path))

"""Where a run executes: the device, the process group under ``torchrun``, signals, provenance."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__

__all__ = ["Dist", "StopOnSignal", "TrainingInterrupted", "git_sha", "resolve_device", "versions"]


@dataclass(frozen=True)
class Dist:
    """This process's place among the processes that train one run (one without ``torchrun``)."""

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


def init_distributed(device_name: str | None) -> tuple[Dist, torch.device]:
    """This process's :class:`Dist` and device; under ``torchrun`` (``WORLD_SIZE`` > 1) it joins (or
    starts) the process group: NCCL on CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(int(os.environ["RANK"]), world, local_rank, owns), device


def end_distributed(dist: Dist) -> None:
    """Wait for every rank; shut the group down if noisemod started it."""
    if dist.world_size > 1:
        torch.distributed.barrier()
        if dist.owns_group:  # shut it down on every rank before any exits (a live gloo group aborts at exit)
            torch.distributed.destroy_process_group()


def reduce_totals(totals: torch.Tensor, world_size: int) -> list[float]:
    """Sum an epoch's totals ``[loss sum, correct, seen, first bad step]`` over ranks (the first bad
    step: the max, -1 unless some rank had one); one sync per epoch."""
    if world_size > 1:
        torch.distributed.all_reduce(totals[:3])
        torch.distributed.all_reduce(totals[3:], op=torch.distributed.ReduceOp.MAX)
    return totals.tolist()


def broadcast_flag(flag: bool, world_size: int) -> bool:
    """Rank 0's ``flag``, told to every rank."""
    if world_size <= 1:
        return flag
    t = torch.tensor([float(flag)], device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
    torch.distributed.broadcast(t, 0)
    return bool(t.item())


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after a resumable checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopOnSignal:
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

    def interrupted(self, where: str) -> TrainingInterrupted:
        """The exception that ends training after the checkpoint, ``where`` saying after what."""
        name = signal.Signals(self.requested).name
        return TrainingInterrupted(f"interrupted by {name} {where}", self.requested)


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
    """The versions of noisemod and what it runs on, for result.json."""
    import numpy
    import torchvision

    return {
        "noisemod": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }

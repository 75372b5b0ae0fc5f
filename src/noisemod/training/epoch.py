"""One epoch of training steps, and where training stands (:class:`RunState`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..progress import progress_bar
from ..rundir import RunDir
from .build import Training
from .runtime import StopOnSignal

__all__ = ["RunState", "train_epoch"]


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
    stop: StopOnSignal | None = None,
    checkpoint: Callable[[float], None] | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, float]:
    """Train one epoch (0-based ``epoch``), or the rest of the interrupted one in ``state.partial``.

    Returns the device tensor ``[loss sum, correct, seen, first bad step or -1]`` and the seconds
    spent. Nothing here synchronizes with the device: each step only records its loss and correct
    count, reduced once at the end, where divergence is found too. When ``stop.requested`` is set
    (a signal), the position in the epoch goes into ``state.partial``, ``checkpoint(nan)`` writes
    it (unless the epoch diverged) and :class:`~.runtime.TrainingInterrupted` is raised.
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
        batches = progress_bar(batches, f"epoch {epoch + 1}/{training.config.epochs}", total=len(loader), initial=first)
    steps = len(loader)
    for step, (x, y) in enumerate(batches, start=first):
        training.method.set_progress(epoch + (step + 1) / steps)
        loss, logits = training.step(x, y)
        records.add(loss, logits, y)
        if stop is not None and stop.requested:
            if checkpoint is not None and records.totals(training.device)[3] < 0:  # never checkpoint a diverged model
                state.partial = {"step": step + 1, **records.to_state(), "seconds": time.perf_counter() - t0}
                checkpoint(float("nan"))
            raise stop.interrupted(
                f"at step {step + 1} of epoch {epoch + 1}; a resumable checkpoint is in {RunDir.LAST}: "
                "continue with --resume"
            )
    return records.totals(training.device), time.perf_counter() - t0

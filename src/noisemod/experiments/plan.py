"""What a sweep has to do, decided before anything runs: for each run of the spec, whether it is
new, interrupted (resume) or complete (skip), and which complete runs still miss the spec's
interpretability. Planning reads the sweep folder and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import identity
from ..rundir import RunDir, SweepDir
from .spec import Run, Spec, expand, interpreted, randomization_for, robustness_for, yardsticks_for
from .task import missing_post, needs_retraining

__all__ = ["ACTIONS", "PlannedRun", "SweepPlan", "plan_action", "plan_sweep"]

#: run directory status -> what the sweep does with it
ACTIONS = {"complete": "skip", "interrupted": "resume", "new": "new"}


def plan_action(run_dir) -> str:
    """``skip`` (complete: result.json), ``resume`` (last.pt, no result.json) or ``new``; the plan
    turns a complete run into ``retrain`` when the spec asks for measurements it lacks and its
    weights are gone (a run restored from an archive, which keeps no checkpoints)."""
    return ACTIONS[RunDir(run_dir).status()]


@dataclass
class PlannedRun:
    """One run of the plan. ``record`` is what :func:`~noisemod.experiments.run_sweep` returns for it
    (``run_id``, ``dir``, ``config``, ``action``, ``status``); ``interpretability``, ``robustness`` and
    ``randomization`` what the spec asks after training (else None); ``interpret``: complete, but
    missing some of it."""

    @property
    def post(self) -> dict | None:
        """What :func:`~.task.run_task` does after training: ``{"interpretability", "robustness",
        "randomization", "yardsticks"}``."""
        post = {"interpretability": self.interpretability, "robustness": self.robustness}
        post["randomization"], post["yardsticks"] = self.randomization, self.yardsticks
        return post if any(v is not None for v in post.values()) else None

    run: Run
    dir: RunDir
    action: str
    interpretability: dict | None = None
    robustness: dict | None = None
    randomization: dict | None = None
    yardsticks: dict | None = None
    interpret: bool = False
    record: dict = field(init=False)

    def __post_init__(self):
        self.record = {
            "run_id": self.run.run_id,
            "dir": str(self.dir.path),
            "config": self.run.config.to_dict(),
            "action": self.action,
            "status": "planned",
        }


@dataclass
class SweepPlan:
    """Every run of a spec under one budget in one sweep folder, and the work left: of the first
    ``limit`` runs in the spec's order when ``limit`` is set (the rest wait for a sweep without it)."""

    spec: Spec
    budget: str
    sweep: SweepDir
    runs: list[PlannedRun]
    limit: int | None = None

    @property
    def scope(self) -> list[PlannedRun]:
        """The runs this sweep works on: the first ``limit``, or all."""
        return self.runs[: self.limit]

    @property
    def complete(self) -> list[PlannedRun]:
        """The runs with nothing left to do."""
        return [p for p in self.runs if p.action == "skip" and not p.interpret]

    @property
    def later(self) -> list[PlannedRun]:
        """The runs with work left beyond ``limit``."""
        return [p for p in self.runs[len(self.scope) :] if p.action != "skip" or p.interpret]

    @property
    def to_train(self) -> list[PlannedRun]:
        return [p for p in self.scope if p.action != "skip"]

    @property
    def to_interpret(self) -> list[PlannedRun]:
        return [p for p in self.scope if p.interpret]

    @property
    def work(self) -> list[PlannedRun]:
        """The finished runs still to interpret (a sweep paused between a run's training and its
        interpretation; minutes each, and the archive lacks their columns until then), then the
        runs to train (new or resumed)."""
        return self.to_interpret + self.to_train

    @property
    def records(self) -> list[dict]:
        return [p.record for p in self.runs]


def plan_sweep(
    spec: Spec, budget: str, sweep: SweepDir, data_root=None, archive: SweepDir | None = None, limit: int | None = None
) -> SweepPlan:
    """The plan of ``spec`` under ``budget`` in ``sweep`` (``data_root`` given to every run; work
    only on its first ``limit`` runs when given), after
    checking that the folder holds this sweep (or none) and that each existing run directory was
    trained with the same settings; raises ``ValueError`` naming what differs. With ``archive`` (a
    dry run's), a run the folder lacks and the archive holds finished is planned as the sweep would
    after restoring it (its record says ``"archived": True``), reading the archive only."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"invalid limit={limit!r}: expected a positive integer")
    runs = expand(spec, budget)
    if data_root is not None:
        runs = [Run(r.run_id, r.config.replace(data_root=str(data_root))) for r in runs]
    saved = sweep.read_sweep()
    if saved and (saved.get("spec"), saved.get("budget")) != (spec.name, budget):
        raise ValueError(
            f"{sweep.path} holds sweep {saved.get('spec')!r} with budget {saved.get('budget')!r}, "
            f"not {spec.name!r} with budget {budget!r}: use another --out"
        )
    planned = []
    for run in runs:
        run_dir = source = sweep.run(run.run_id)
        if archive is not None and not run_dir.path.exists() and archive.run(run.run_id).is_complete():
            source = archive.run(run.run_id)
        _check_existing(run, source)
        settings = spec.interpretability if interpreted(spec, run.config) else None
        robust = robustness_for(spec, run.config)
        randomization = randomization_for(spec, run.config)
        p = PlannedRun(run, run_dir, plan_action(source.path), settings, robust, randomization)
        p.yardsticks = yardsticks_for(spec, run.config)
        p.interpret = p.action == "skip" and bool(missing_post(source, p.post))
        if p.interpret and needs_retraining(source, p.post):
            p.action = p.record["action"] = "retrain"
            p.interpret = False
        if source is not run_dir:
            p.record["archived"] = True
        planned.append(p)
    return SweepPlan(spec, budget, sweep, planned, limit)


def _check_existing(run: Run, run_dir: RunDir) -> None:
    """Refuse to skip or resume a run directory trained with other settings (runtime settings,
    e.g. data_root, device or compile, may differ: they do not change what a run computes)."""
    if not run_dir.file(run_dir.CONFIG).is_file():
        return
    saved, planned = identity(run_dir.read_config()), identity(run.config)
    diff = [f"{k}={saved[k]!r} there, {v!r} in the spec" for k, v in planned.items() if saved[k] != v]
    if diff:
        raise ValueError(
            f"{run_dir.path} was trained with other settings ({'; '.join(diff)}): "
            f"use another --out, or delete that run directory"
        )

"""Run a sweep: every run of a spec as its own ``noisemod train`` process, N at a time, on this
machine or a Ray cluster, into a sweep folder (:class:`noisemod.rundir.SweepDir`: sweep.json,
results.csv, runs/<run_id>/).

Three steps, one module each: :mod:`.plan` decides what to run, skip, resume or interpret (and
checks the folder) without writing anything; :mod:`.executors` decides where each run executes;
:mod:`.task` is the work of one run (its ``noisemod train`` and ``noisemod evaluate`` processes).
This module joins them: it logs progress with an ETA and rewrites ``results.csv`` atomically after
each run. Rerunning the same command skips completed runs, resumes interrupted ones and starts the
others.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..rundir import SweepDir, write_results_table
from .archive import archive_sweep, check_against_spec, restore_runs
from .catalog import resolve_spec
from .executors import ExecutorError, check_executor, make_executor
from .plan import PlannedRun, SweepPlan, plan_action, plan_sweep
from .spec import load_spec
from .task import interpret_command, train_command

__all__ = ["exit_code", "interpret_command", "plan_action", "run_sweep", "train_command", "write_results"]

write_results = write_results_table  # results.csv's writer, for code that imported it from here


def exit_code(runs: list[dict]) -> int:
    """1 when a run of the sweep failed, else 0 (for the command line)."""
    return int(any(r["status"] == "failed" for r in runs))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _row(p: PlannedRun, spec_name: str, budget: str) -> dict | None:
    """The results.csv row of a finished run (its settings, then its results), None while it is pending."""
    base = {"run_id": p.run.run_id, "spec": spec_name, "budget": budget, **p.run.config.to_dict()}
    if p.dir.is_complete():
        result = {k: v for k, v in p.dir.read_result().items() if not isinstance(v, dict)}
        return {
            **base,
            "status": "completed",
            **result,
            **p.dir.interpretability_columns(),
            **p.dir.robustness_columns(),
        }
    if p.dir.has_error_log():
        return {**base, "status": "failed"}
    return None


def _whole_run_seconds(p: PlannedRun) -> float | None:
    """The wall seconds of a finished run's processes (timings.json) when one training process
    trained it all (its time covers the epochs' in result.json), else None: a resumed run's
    timings hold its last process only."""
    try:
        timings, result = p.dir.read_timings(), p.dir.read_result()
    except ValueError:  # a file that cannot be read: no pace from it
        return None
    if "train" not in timings or timings["train"] < float(result.get("train_seconds") or 0.0):
        return None
    return sum(timings.values())


class _Progress:
    """What a running sweep shares between its runs (under one lock): the work, numbered from 1,
    the table, the log lines with elapsed time and ETA (:meth:`eta`), and each record's status."""

    def __init__(self, plan: SweepPlan, log, archive=None, jobs: int = 1):
        self.plan, self.log, self.archive, self.jobs = plan, log, archive, jobs
        self.work = dict(enumerate(plan.work, 1))
        self.total = len(self.work)
        self.lock, self.start = threading.Lock(), time.perf_counter()
        self.begun: dict[int, float] = {}  # the runs under way: when each started
        self.ended_runs: set[int] = set()  # the runs ended, well or not
        # "train" or "interpret": seconds of each whole run that ended well, from the finished runs'
        # timings.json first (a sweep started again knows its pace before its first run ends)
        whole = [s for s in map(_whole_run_seconds, plan.complete) if s is not None]
        self.took: dict[str, list[float]] = {"train": whole} if whole else {}

    @property
    def finished(self) -> int:
        return len(self.ended_runs)

    @staticmethod
    def _kind(p: PlannedRun) -> str:
        return "interpret" if p.action == "skip" else "train"

    def eta(self, now: float) -> float:
        """Seconds the sweep has left: each run not ended at the mean time of the runs of its kind
        (trained from the start, or a trained run interpreted) that ended well, less what a run
        under way has spent already, shared among the runs at a time; the folder's finished runs that
        one process trained whole count among the trained ones from the start. Resumed runs teach it
        nothing (their time is part of a run). Before a run of every kind left has ended whole, the wall
        time per ended run so far, times the runs left."""
        left, waiting = 0.0, 0
        for k, p in self.work.items():
            if k in self.ended_runs:
                continue
            took = self.took.get(self._kind(p))
            if not took:
                return (now - self.start) / max(1, self.finished) * (self.total - self.finished)
            left += max(0.0, sum(took) / len(took) - (now - self.begun[k] if k in self.begun else 0.0))
            waiting += 1
        return left / max(1, min(self.jobs, waiting))

    def summary(self) -> str:
        """The sweep's last log line: the runs complete of all, the time, the runs that failed."""
        plan = self.plan
        failed = [r["run_id"] for r in plan.records if r["status"] == "failed"]
        done = sum(r["status"] in ("skipped", "completed") for r in plan.records)
        return (
            f"sweep {plan.spec.name} (budget {plan.budget}): {done} of {len(plan.runs)} runs complete "
            f"in {_duration(time.perf_counter() - self.start)}"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
            + f"; results in {plan.sweep.file(plan.sweep.RESULTS)}"
        )

    def table(self) -> None:
        rows = [_row(p, self.plan.spec.name, self.plan.budget) for p in self.plan.runs]
        self.plan.sweep.write_results([row for row in rows if row is not None])

    def started(self, k: int, p: PlannedRun) -> None:
        what = {
            "resume": " (resume)",
            "skip": " (after training: interpretability, robustness)",
            "retrain": " (again: archived without the weights its new measurements need)",
        }.get(p.action, "")
        with self.lock:
            self.begun[k] = time.perf_counter()
            self.log(f"[{k}/{self.total}] start {p.run.run_id}{what}")

    def ended(self, k: int, p: PlannedRun, ok: bool, code: int, seconds: float) -> None:
        with self.lock:
            self.begun.pop(k, None)
            self.ended_runs.add(k)
            if ok and p.action != "resume":
                self.took.setdefault(self._kind(p), []).append(seconds)
            p.record["status"] = ("skipped" if p.action == "skip" else "completed") if ok else "failed"
            self.table()
            if self.archive is not None and ok:
                archive_sweep(self.plan.sweep.path, self.archive, partial=True)
            now = time.perf_counter()
            elapsed, eta = now - self.start, self.eta(now)
            if ok:
                result = p.dir.read_result()
                outcome = f"test_accuracy {result['test_accuracy']:.4f}, vii {result['vii']:.4f}"
            else:
                outcome = f"FAILED (exit {code}), see {p.dir.file(p.dir.ERROR_LOG)}"
            self.log(
                f"[{k}/{self.total}] {'done' if ok else 'fail'} {p.run.run_id} in {_duration(seconds)}: {outcome}; "
                f"{self.finished}/{self.total} finished, elapsed {_duration(elapsed)}, ETA {_duration(eta)}"
            )


def _sweep_info(plan: SweepPlan, spec_path, out_dir, jobs: int, data_root) -> dict:
    """sweep.json: what the folder holds and the command that reproduces it (the spec as given: a
    bundled spec by its name; ``spec_path``: its file)."""
    command = ["noisemod", "sweep", str(spec_path), "--out", str(out_dir), "--budget", plan.budget, "--jobs", str(jobs)]
    command += ["--data-root", str(data_root)] if data_root is not None else []
    return {
        "spec": plan.spec.name,
        "spec_path": str(plan.spec.path),
        "description": plan.spec.description,
        "budget": plan.budget,
        "runs": [p.run.run_id for p in plan.runs],
        "command": shlex.join(command),
        "cwd": os.getcwd(),
    }


def _later(plan: SweepPlan) -> str:
    """What a limited sweep leaves for later, for its first log line."""
    later = plan.later
    return f", {len(later)} left for later (the first {plan.limit} runs only)" if later else ""


def _log_plan(plan: SweepPlan, executor: str, log) -> None:
    """A dry run's output: the counts, then each run's action and command."""
    archived = sum(bool(p.record.get("archived")) for p in plan.runs)
    log(
        f"sweep {plan.spec.name} (budget {plan.budget}): {len(plan.runs)} runs, {len(plan.to_train)} to run, "
        f"{len(plan.to_interpret)} finished to interpret{_later(plan)}, executor {executor}"
        + (f"; {archived} restored from the archive first" if archived else "")
    )
    later = {id(p) for p in plan.later}
    for p in plan.runs:
        if id(p) in later:
            log(f"  later  {p.run.run_id}")
            continue
        command = train_command(p.run.config, p.dir.path, p.action == "resume")
        where = " (archived)" if p.record.get("archived") else ""
        log(f"  {'interp' if p.interpret else p.action:6s} {p.run.run_id}{where}: {shlex.join(command)}")


def _open_folder(sweep: SweepDir, pool, info: dict) -> None:
    """Create the sweep folder, check that the executor's workers can write it (removing it again
    when it was new and they cannot), then write sweep.json."""
    created = not sweep.path.exists()
    sweep.path.mkdir(parents=True, exist_ok=True)
    try:
        pool.check_folder(sweep.path)  # before anything is written
    except ExecutorError:
        if created:
            sweep.path.rmdir()
        raise
    sweep.write_sweep(info)


def _execute(plan: SweepPlan, pool, progress: _Progress) -> None:
    """Run the plan's work on ``pool``: the finished runs to interpret, then the runs to train."""
    for p in plan.complete:  # a finished run left for later (limit) with a measurement to add stays planned
        p.record["status"] = "skipped"
    work = progress.work
    starts: dict[int, float] = {}

    def on_start(k: int) -> None:
        starts[k] = time.perf_counter()
        progress.started(k, work[k])

    def on_end(k: int, ok: bool, code: int, resumed: bool) -> None:
        progress.ended(k, work[k], ok, code, time.perf_counter() - starts[k])

    plan.sweep.runs_dir.mkdir(parents=True, exist_ok=True)
    progress.table()
    tasks = [(k, p.run.config.to_dict(), str(p.dir.path), p.post) for k, p in work.items()]
    pool.run(tasks, on_start, on_end)
    progress.table()


def run_sweep(
    spec_path,
    out_dir,
    *,
    jobs: int = 1,
    budget: str = "paper",
    data_root=None,
    dry_run: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    archive=None,
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every run of the spec at ``spec_path`` (a file, or a bundled spec's name:
    :func:`noisemod.experiments.catalog.resolve_spec`) under ``budget`` into ``out_dir``.

    Each run is a ``noisemod train`` process (then a ``noisemod evaluate`` one for what the spec
    asks after training), ``jobs`` at a time, on this machine (``executor`` ``"local"``:
    ``max(1, cores // jobs)`` threads each, GPUs round-robin) or as Ray tasks (``"ray"``, on the
    cluster at ``ray_address`` or ``RAY_ADDRESS``, else a local Ray instance; see
    :mod:`noisemod.experiments.executors`); ``data_root`` is passed to every run. Completed runs are
    skipped (or only evaluated, where they lack a measurement the spec asks), interrupted ones
    resumed, and runs restored from the archive without the weights a new measurement needs are
    trained again; ``OUT/results.csv`` is rewritten after each run. A failed run leaves its stderr
    tail in ``OUT/runs/<id>/error.log`` and the sweep goes on. With ``limit``, only the first
    ``limit`` runs of the spec's order are worked on (e.g. the runs that a figure's claims read, which
    a spec lists first); the others keep their state for a sweep without it.
    ``dry_run`` only logs the plan (the command of each run, what the archive would restore
    included) and writes nothing. With ``archive``
    (e.g. ``results/NAME``), the runs archived there that ``out_dir`` lacks are restored first (a
    campaign continued on another machine skips them), and the archive is rewritten with every
    finished run after each run ends (:func:`noisemod.experiments.archive.archive_sweep`).

    Returns one dict per run: ``run_id``, ``dir``, ``config``, ``action`` (skip, resume, new or
    retrain) and ``status``: ``skipped`` (already trained), ``completed``, ``failed`` or ``planned``
    (dry run, or left for later by ``limit``).
    Raises ``ValueError`` for an invalid spec, or an ``out_dir`` holding another sweep or runs
    trained with other settings, and :class:`~noisemod.experiments.executors.ExecutorError` for an
    unknown executor, an unreachable cluster or a folder its workers cannot write, before any run starts.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"invalid jobs={jobs!r}: expected a positive integer")
    spec, sweep = load_spec(resolve_spec(spec_path)), SweepDir(Path(out_dir).resolve())
    stored = SweepDir(archive) if archive is not None and dry_run else None  # a dry run reads it in place
    plan = plan_sweep(spec, budget, sweep, data_root, stored, limit)  # checks the folder before anything is written
    if archive is not None:
        check_against_spec(archive, [p.run for p in plan.runs])
    if archive is not None and not dry_run and Path(archive).is_dir() and restore_runs(archive, sweep.path):
        plan = plan_sweep(spec, budget, sweep, data_root, limit=limit)
        log(f"restored the finished runs archived in {archive}")
    check_executor(executor)
    if dry_run:
        _log_plan(plan, executor, log)
        return plan.records
    pool = make_executor(executor, jobs, ray_address=ray_address)
    log(
        f"sweep {plan.spec.name} (budget {budget}): {len(plan.runs)} runs, {len(plan.complete)} "
        f"complete already, {len(plan.to_train)} to run"
        + (f", {len(plan.to_interpret)} trained to interpret" if plan.to_interpret else "")
        + _later(plan)
        + f", {pool.describe(len(plan.to_train))} -> {plan.sweep.path}"
    )
    _open_folder(plan.sweep, pool, _sweep_info(plan, spec_path, out_dir, jobs, data_root))
    progress = _Progress(plan, log, archive, jobs)
    _execute(plan, pool, progress)
    log(progress.summary())
    return plan.records

"""Run a sweep: every run of a spec as its own ``noisemod train`` process, N at a time, on this
machine or a Ray cluster (:mod:`noisemod.experiments.executors`), into a sweep folder
(:class:`noisemod.rundir.SweepDir`: sweep.json, results.csv, runs/<run_id>/).

Each run gets its settings as a file: the runner writes ``runs/<run_id>/config.json`` and starts
``noisemod train --config runs/<run_id>/config.json --out runs/<run_id>``. Rerunning the same
command skips completed runs (``result.json``), resumes interrupted ones (``last.pt`` without
``result.json``) and starts the others; ``results.csv`` is rewritten atomically after each run.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..config import identity
from ..rundir import RunDir, SweepDir, write_results_table
from .executors import EXECUTORS, ExecutorError, make_executor
from .spec import Run, Spec, expand, interpreted, load_spec

__all__ = ["exit_code", "interpret_command", "plan_action", "run_sweep", "train_command", "write_results"]

ACTIONS = {"complete": "skip", "interrupted": "resume", "new": "new"}

write_results = write_results_table  # results.csv's writer, for code that imported it from here


def plan_action(run_dir) -> str:
    """``skip`` (complete: result.json), ``resume`` (last.pt, no result.json) or ``new``."""
    return ACTIONS[RunDir(run_dir).status()]


def train_command(config, run_dir, resume: bool) -> list[str]:
    """The ``noisemod train`` process of one run. It reads its settings from the run's config.json,
    which the runner writes first from ``config``, so no setting is re-serialized as a flag."""
    run = RunDir(run_dir)
    cmd = [sys.executable, "-m", "noisemod", "train", "--config", str(run.file(run.CONFIG)), "--out", str(run.path)]
    return [*cmd, "--quiet"] + (["--resume"] if resume else [])


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


def _row(run: Run, run_dir: RunDir, spec_name: str, budget: str) -> dict | None:
    """The results.csv row of a finished run (its settings, then its results), None while it is pending."""
    base = {"run_id": run.run_id, "spec": spec_name, "budget": budget, **run.config.to_dict()}
    if run_dir.is_complete():
        result = {k: v for k, v in run_dir.read_result().items() if not isinstance(v, dict)}
        return {**base, "status": "completed", **result, **run_dir.interpretability_columns()}
    if run_dir.has_error_log():
        return {**base, "status": "failed"}
    return None


def exit_code(runs: list[dict]) -> int:
    """1 when a run of the sweep failed, else 0 (for the command line)."""
    return int(any(r["status"] == "failed" for r in runs))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _plan(spec: Spec, budget: str, sweep: SweepDir, data_root) -> tuple[list[Run], list[dict]]:
    """The runs and one record per run (run_id, dir, config, action, status), after checking that
    the folder holds this sweep and each existing run directory was trained with the same settings."""
    runs = expand(spec, budget)
    if data_root is not None:
        runs = [Run(r.run_id, r.config.replace(data_root=str(data_root))) for r in runs]
    saved = sweep.read_sweep()
    if saved and (saved.get("spec"), saved.get("budget")) != (spec.name, budget):
        raise ValueError(
            f"{sweep.path} holds sweep {saved.get('spec')!r} with budget {saved.get('budget')!r}, "
            f"not {spec.name!r} with budget {budget!r}: use another --out"
        )
    for run in runs:
        _check_existing(run, sweep.run(run.run_id))
    records = [
        {
            "run_id": r.run_id,
            "dir": str(sweep.run(r.run_id).path),
            "config": r.config.to_dict(),
            "action": plan_action(sweep.run(r.run_id).path),
            "status": "planned",
        }
        for r in runs
    ]
    return runs, records


def _train(config, run_dir: RunDir, resume: bool, env: dict, child: Callable) -> tuple[bool, int]:
    """Train one run in its own process (``child(command, env)``); on failure its output's tail goes to error.log."""
    run_dir.clear_error_log()
    run_dir.write_config(config)  # the process reads its settings from here
    proc = child(train_command(config, run_dir.path, resume), env)
    ok = proc.returncode == 0 and run_dir.is_complete()
    if not ok:
        tail = "\n".join((proc.stderr or proc.stdout or "").splitlines()[-40:])
        run_dir.write_error_log(f"exit status {proc.returncode}\n{shlex.join(proc.args)}\n{tail}\n")
    return ok, proc.returncode


class _Progress:
    """What a running sweep shares between its runs (under one lock): the table, the log lines
    with elapsed time and ETA, and each record's status."""

    def __init__(self, sweep: SweepDir, spec: Spec, budget: str, runs: list[Run], total: int, log):
        self.sweep, self.spec, self.budget, self.runs, self.total, self.log = sweep, spec, budget, runs, total, log
        self.lock, self.start, self.finished = threading.Lock(), time.perf_counter(), 0

    def table(self) -> None:
        rows = [_row(r, self.sweep.run(r.run_id), self.spec.name, self.budget) for r in self.runs]
        self.sweep.write_results([row for row in rows if row is not None])

    def started(self, k: int, run: Run, what: str) -> None:
        with self.lock:
            self.log(f"[{k}/{self.total}] start {run.run_id}{what}")

    def ended(self, k: int, rec: dict, run: Run, ok: bool, code: int, seconds: float) -> None:
        with self.lock:
            self.finished += 1
            rec["status"] = ("skipped" if rec["action"] == "skip" else "completed") if ok else "failed"
            self.table()
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.finished * (self.total - self.finished)
            run_dir = self.sweep.run(run.run_id)
            if ok:
                result = run_dir.read_result()
                outcome = f"test_accuracy {result['test_accuracy']:.4f}, vii {result['vii']:.4f}"
            else:
                outcome = f"FAILED (exit {code}), see {run_dir.file(run_dir.ERROR_LOG)}"
            self.log(
                f"[{k}/{self.total}] {'done' if ok else 'fail'} {run.run_id} in {_duration(seconds)}: {outcome}; "
                f"{self.finished}/{self.total} finished, elapsed {_duration(elapsed)}, ETA {_duration(eta)}"
            )


def _sweep_info(spec: Spec, spec_path, out_dir, budget: str, jobs: int, data_root, runs: list[Run]) -> dict:
    """sweep.json: what the folder holds and the command that reproduces it."""
    command = ["noisemod", "sweep", str(spec_path), "--out", str(out_dir), "--budget", budget, "--jobs", str(jobs)]
    command += ["--data-root", str(data_root)] if data_root is not None else []
    return {
        "spec": spec.name,
        "spec_path": str(spec_path),
        "description": spec.description,
        "budget": budget,
        "runs": [r.run_id for r in runs],
        "command": shlex.join(command),
        "cwd": os.getcwd(),
    }


def interpret_command(run_dir, explainer: str, settings: dict) -> list[str]:
    """The ``noisemod evaluate --metrics`` process that adds one explainer's scores to a finished run."""
    cmd = [sys.executable, "-m", "noisemod", "evaluate", str(run_dir), "--metrics", ",".join(settings["metrics"])]
    cmd += ["--explainer", explainer, "--json", "--quiet"] + (["--floor"] if settings["floor"] else [])
    return cmd + (["--n", str(settings["n"])] if settings["n"] is not None else [])


def _missing_explainers(run_dir: RunDir, settings: dict) -> list[str]:
    """The spec's explainers whose metrics are not yet in the run's interpretability.json."""
    return [
        e
        for e in settings["explainers"]
        if not run_dir.has_interpretability(e, metrics=settings["metrics"], n=settings["n"], floor=settings["floor"])
    ]


def _interpret(run_dir: RunDir, settings: dict, env: dict, child: Callable) -> tuple[bool, int]:
    """The spec's interpretability metrics for a finished run, each explainer not yet done; on
    failure the output's tail goes to error.log."""
    for explainer in _missing_explainers(run_dir, settings):
        proc = child(interpret_command(run_dir.path, explainer, settings), env)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout or "").splitlines()[-40:])
            run_dir.write_error_log(f"exit status {proc.returncode}\n{shlex.join(proc.args)}\n{tail}\n")
            return False, proc.returncode
    return True, 0


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
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every run of the spec at ``spec_path`` under ``budget`` into ``out_dir``.

    Each run is a ``noisemod train`` process, ``jobs`` at a time, on this machine (``executor``
    ``"local"``: ``max(1, cores // jobs)`` threads each, GPUs round-robin) or as Ray tasks
    (``"ray"``, on the cluster at ``ray_address`` or ``RAY_ADDRESS``, else a local Ray instance;
    see :mod:`noisemod.experiments.executors`); ``data_root`` is passed to every run. Completed runs
    are skipped, interrupted ones resumed; ``OUT/results.csv`` is rewritten after each run. A failed
    run leaves its stderr tail in ``OUT/runs/<id>/error.log`` and the sweep goes on.
    ``dry_run`` only logs the plan (the command of each run) and writes nothing.

    Returns one dict per run: ``run_id``, ``dir``, ``config``, ``action`` (skip/resume/new) and
    ``status``: ``skipped`` (already complete), ``completed``, ``failed`` or ``planned`` (dry run).
    Raises ``ValueError`` for an invalid spec, or an ``out_dir`` holding another sweep or runs
    trained with other settings, and :class:`~noisemod.experiments.executors.ExecutorError` for an
    unknown executor, an unreachable cluster or a folder its workers cannot write, before any run starts.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"invalid jobs={jobs!r}: expected a positive integer")
    spec = load_spec(spec_path)
    sweep = SweepDir(Path(out_dir).resolve())
    runs, records = _plan(spec, budget, sweep, data_root)
    todo = [(rec, run) for rec, run in zip(records, runs) if rec["action"] != "skip"]
    if executor not in EXECUTORS:
        raise ExecutorError(f"invalid executor={executor!r}: expected one of {', '.join(EXECUTORS)}")
    # the finished runs that still miss the spec's interpretability (done after the runs to train)
    to_interpret = [
        (rec, run)
        for rec, run in zip(records, runs)
        if rec["action"] == "skip"
        and interpreted(spec, run.config)
        and _missing_explainers(sweep.run(run.run_id), spec.interpretability)
    ]
    if dry_run:
        log(
            f"sweep {spec.name} (budget {budget}): {len(runs)} runs, {len(todo)} to run, "
            f"{len(to_interpret)} finished to interpret, executor {executor}"
        )
        interpret_ids = {run.run_id for _, run in to_interpret}
        for rec, run in zip(records, runs):
            command = train_command(run.config, rec["dir"], rec["action"] == "resume")
            action = "interp" if run.run_id in interpret_ids else rec["action"]
            log(f"  {action:6s} {run.run_id}: {shlex.join(command)}")
        return records

    pool = make_executor(executor, jobs, ray_address=ray_address)
    log(
        f"sweep {spec.name} (budget {budget}): {len(runs)} runs, {len(runs) - len(todo)} complete already, "
        f"{len(todo)} to run, {pool.describe(len(todo))} -> {sweep.path}"
    )
    created = not sweep.path.exists()
    sweep.path.mkdir(parents=True, exist_ok=True)
    try:
        pool.check_folder(sweep.path)  # before anything is written
    except ExecutorError:
        if created:
            sweep.path.rmdir()
        raise
    sweep.write_sweep(_sweep_info(spec, spec_path, out_dir, budget, jobs, data_root, runs))
    for rec in records:
        if rec["action"] == "skip":
            rec["status"] = "skipped"
    work = todo + to_interpret
    progress = _Progress(sweep, spec, budget, runs, len(work), log)
    keyed = {k: (rec, run) for k, (rec, run) in enumerate(work, 1)}
    starts: dict[int, float] = {}

    def on_start(k: int) -> None:
        rec, run = keyed[k]
        starts[k] = time.perf_counter()
        what = {"resume": " (resume)", "skip": " (interpretability)"}.get(rec["action"], "")
        progress.started(k, run, what)

    def on_end(k: int, ok: bool, code: int, resumed: bool) -> None:
        rec, run = keyed[k]
        progress.ended(k, rec, run, ok, code, time.perf_counter() - starts[k])

    sweep.runs_dir.mkdir(parents=True, exist_ok=True)
    progress.table()
    tasks = [
        (
            k,
            run.config.to_dict(),
            str(sweep.run(run.run_id).path),
            spec.interpretability if interpreted(spec, run.config) else None,
        )
        for k, (rec, run) in keyed.items()
    ]
    pool.run(tasks, on_start, on_end)
    progress.table()
    failed = [rec["run_id"] for rec in records if rec["status"] == "failed"]
    log(
        f"sweep {spec.name} (budget {budget}): {len(records) - len(failed)} of {len(records)} runs complete in "
        f"{_duration(time.perf_counter() - progress.start)}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + f"; results in {sweep.file(sweep.RESULTS)}"
    )
    return records

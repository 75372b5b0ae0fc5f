"""Run a sweep: every run of a spec as its own ``noisemod train`` process, N at a time, into::

    OUT/sweep.json          spec name, budget, run ids, the command that reproduces the sweep
    OUT/results.csv         one row per finished run (completed or failed), rewritten atomically
    OUT/runs/<run_id>/      a run directory (see noisemod.train); error.log when the run failed

Rerunning the same command skips completed runs (``result.json``), resumes interrupted ones
(``last.pt`` without ``result.json``) and starts the others.
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import TrainConfig
from ..io import atomic_write, read_json, write_json
from .spec import CONFIG_FIELDS, DEFAULTS, Run, expand, load_spec

__all__ = ["exit_code", "plan_action", "run_sweep", "train_command", "write_results"]

FIRST_RESULTS = ("test_accuracy", "vii", "val_accuracy", "best_epoch", "train_seconds")
IGNORED_ON_RERUN = ("data_root", "device")  # may differ between machines without changing a run


def plan_action(run_dir: Path) -> str:
    """``skip`` (complete: result.json), ``resume`` (last.pt, no result.json) or ``new``."""
    if (run_dir / "result.json").is_file():
        return "skip"
    return "resume" if (run_dir / "last.pt").is_file() else "new"


def train_command(config: TrainConfig, run_dir: Path, resume: bool) -> list[str]:
    """``python -m noisemod train`` with every non-default setting of ``config``."""
    cmd = [sys.executable, "-m", "noisemod", "train"]
    for key in CONFIG_FIELDS:
        value = getattr(config, key)
        if value == getattr(DEFAULTS, key) or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        cmd += [flag] if value is True else [flag, repr(value) if isinstance(value, float) else str(value)]
    return cmd + ["--out", str(run_dir), "--quiet"] + (["--resume"] if resume else [])


def _check_existing(run: Run, run_dir: Path) -> None:
    """Refuse to skip or resume a run directory trained with other settings."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    # from_dict gives a setting added after the run was trained (absent from its config.json) its default
    saved = TrainConfig.from_dict(read_json(path)).to_dict()
    planned = run.config.to_dict()
    diff = [
        f"{k}={saved.get(k)!r} there, {v!r} in the spec"
        for k, v in planned.items()
        if k not in IGNORED_ON_RERUN and saved.get(k) != v
    ]
    if diff:
        raise ValueError(
            f"{run_dir} was trained with other settings ({'; '.join(diff)}): "
            f"use another --out, or delete that run directory"
        )


def _row(run: Run, run_dir: Path, spec_name: str, budget: str) -> dict | None:
    """The results.csv row of a finished run, None while it is pending."""
    base = {"run_id": run.run_id, "spec": spec_name, "budget": budget, **run.config.to_dict()}
    if (run_dir / "result.json").is_file():
        result = read_json(run_dir / "result.json")
        scalars = {
            ("result_" + k if k in CONFIG_FIELDS else k): v
            for k, v in result.items()
            if isinstance(v, (str, int, float, bool)) or v is None
        }
        return {**base, "status": "completed", **scalars}
    if (run_dir / "error.log").is_file():
        return {**base, "status": "failed"}
    return None


def write_results(path: Path, rows: list[dict]) -> Path:
    """Write the rows as CSV atomically: a reader (or a crash) sees the old table or the new one."""
    head = ["run_id", "spec", "budget", "status", *CONFIG_FIELDS]
    rest = sorted({k for row in rows for k in row} - set(head) - set(FIRST_RESULTS))
    columns = head + [k for k in FIRST_RESULTS if any(k in row for row in rows)] + rest

    def write(f):
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)

    return atomic_write(path, write, "w")


def exit_code(runs: list[dict]) -> int:
    """1 when a run of the sweep failed, else 0 (for the command line)."""
    return int(any(r["status"] == "failed" for r in runs))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(
    spec_path,
    out_dir,
    *,
    jobs: int = 1,
    budget: str = "paper",
    data_root=None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run every run of the spec at ``spec_path`` under ``budget`` into ``out_dir``.

    Each run is a ``noisemod train`` process, ``jobs`` at a time, each with ``max(1, cores // jobs)``
    threads (OMP_NUM_THREADS); ``data_root`` is passed to every run. Completed runs are
    skipped, interrupted ones resumed; ``OUT/results.csv`` is rewritten after each run. A failed
    run leaves its stderr tail in ``OUT/runs/<id>/error.log`` and the sweep goes on.
    ``dry_run`` only logs the plan (the command of each run) and writes nothing.

    Returns one dict per run: ``run_id``, ``dir``, ``config``, ``action`` (skip/resume/new) and
    ``status``: ``skipped`` (already complete), ``completed``, ``failed`` or ``planned`` (dry run).
    Raises ``ValueError`` for an invalid spec, or an ``out_dir`` holding another sweep or runs
    trained with other settings.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"invalid jobs={jobs!r}: expected a positive integer")
    spec = load_spec(spec_path)
    runs = expand(spec, budget)
    if data_root is not None:
        runs = [Run(r.run_id, r.config.replace(data_root=str(data_root))) for r in runs]
    out = Path(out_dir).resolve()
    dirs = {r.run_id: out / "runs" / r.run_id for r in runs}
    _check_sweep_json(out / "sweep.json", spec.name, budget)
    for run in runs:
        _check_existing(run, dirs[run.run_id])
    records = [
        {
            "run_id": r.run_id,
            "dir": str(dirs[r.run_id]),
            "config": r.config.to_dict(),
            "action": plan_action(dirs[r.run_id]),
            "status": "planned",
        }
        for r in runs
    ]
    todo = [rec for rec in records if rec["action"] != "skip"]
    threads = max(1, _cores() // max(1, min(jobs, len(todo))))
    log(
        f"sweep {spec.name} (budget {budget}): {len(runs)} runs, {len(runs) - len(todo)} complete already, "
        f"{len(todo)} to run, {jobs} at a time with {threads} thread(s) each -> {out}"
    )
    if dry_run:
        for rec, run in zip(records, runs):
            log(
                f"  {rec['action']:6s} {run.run_id}: "
                f"{shlex.join(train_command(run.config, dirs[run.run_id], rec['action'] == 'resume'))}"
            )
        return records

    command = ["noisemod", "sweep", str(spec_path), "--out", str(out_dir), "--budget", budget, "--jobs", str(jobs)]
    write_json(
        out / "sweep.json",
        {
            "spec": spec.name,
            "spec_path": str(spec_path),
            "description": spec.description,
            "budget": budget,
            "runs": [r.run_id for r in runs],
            "command": shlex.join(command + (["--data-root", str(data_root)] if data_root is not None else [])),
            "cwd": os.getcwd(),
        },
    )
    for rec in records:
        if rec["action"] == "skip":
            rec["status"] = "skipped"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    lock = threading.Lock()
    start = time.perf_counter()
    finished = []

    def table():
        rows = [_row(r, dirs[r.run_id], spec.name, budget) for r in runs]
        write_results(out / "results.csv", [row for row in rows if row is not None])

    def one(k: int, rec: dict, run: Run) -> None:
        run_dir, resume = dirs[run.run_id], rec["action"] == "resume"
        with lock:
            (run_dir / "error.log").unlink(missing_ok=True)
            log(f"[{k}/{len(todo)}] start {run.run_id}{' (resume)' if resume else ''}")
        t0 = time.perf_counter()
        proc = subprocess.run(train_command(run.config, run_dir, resume), env=env, capture_output=True, text=True)
        ok = proc.returncode == 0 and (run_dir / "result.json").is_file()
        with lock:
            finished.append(rec)
            rec["status"] = "completed" if ok else "failed"
            if not ok:
                tail = "\n".join((proc.stderr or proc.stdout or "").splitlines()[-40:])
                atomic_write(
                    run_dir / "error.log",
                    lambda f: f.write(f"exit status {proc.returncode}\n{shlex.join(proc.args)}\n{tail}\n"),
                    "w",
                )
            table()
            elapsed = time.perf_counter() - start
            eta = elapsed / len(finished) * (len(todo) - len(finished))
            if ok:
                result = read_json(run_dir / "result.json")
                outcome = f"test_accuracy {result['test_accuracy']:.4f}, vii {result['vii']:.4f}"
            else:
                outcome = f"FAILED (exit {proc.returncode}), see {run_dir / 'error.log'}"
            log(
                f"[{k}/{len(todo)}] {'done' if ok else 'fail'} {run.run_id} in {_duration(time.perf_counter() - t0)}: "
                f"{outcome}; {len(finished)}/{len(todo)} finished, elapsed {_duration(elapsed)}, "
                f"ETA {_duration(eta)}"
            )

    (out / "runs").mkdir(parents=True, exist_ok=True)
    table()
    by_id = {r.run_id: r for r in runs}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in [pool.submit(one, k, rec, by_id[rec["run_id"]]) for k, rec in enumerate(todo, 1)]:
            future.result()
    finally:  # on Ctrl-C start nothing new; the running runs stop too (same process group) and resume later
        pool.shutdown(wait=True, cancel_futures=True)
    failed = [rec["run_id"] for rec in records if rec["status"] == "failed"]
    log(
        f"sweep {spec.name} (budget {budget}): {len(records) - len(failed)} of {len(records)} runs complete in "
        f"{_duration(time.perf_counter() - start)}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + f"; results in {out / 'results.csv'}"
    )
    return records


def _check_sweep_json(path: Path, name: str, budget: str) -> None:
    """Refuse an output folder that holds a sweep of another spec or budget."""
    if path.is_file():
        saved = read_json(path)
        if (saved.get("spec"), saved.get("budget")) != (name, budget):
            raise ValueError(
                f"{path.parent} holds sweep {saved.get('spec')!r} with budget {saved.get('budget')!r}, "
                f"not {name!r} with budget {budget!r}: use another --out"
            )

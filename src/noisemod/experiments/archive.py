"""The results archive: what a finished sweep computed, kept in the repository (``results/NAME/``).

An archive is a sweep folder without checkpoints or event files::

    spec.yaml        the spec the sweep ran (a copy)
    sweep.json       spec name, budget, run ids, the command that reproduces it
    results.csv      one row per finished run (as the sweep wrote it)
    runs/<run_id>/   config.json, result.json, metrics.csv, and when measured interpretability.json
                     and robustness.json

:func:`archive_sweep` copies a sweep in, all at once (the archive is written beside its place
and renamed into it, so a reader or a crash sees the old archive or the new one), and is
idempotent: archiving the same sweep twice gives the same files. With ``partial`` it takes the
finished runs of a sweep still running (``noisemod sweep --archive`` calls it after each run), and
:func:`restore_runs` puts archived runs back into a sweep folder on another machine, so that the
sweep skips them instead of training them again. ``noisemod report`` reads an archive as it reads
a sweep (the figures that need checkpoints are left out).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..io import CorruptFileError, read_json
from ..rundir import RunDir, SweepDir

__all__ = [
    "ARCHIVED_FILES",
    "SPEC",
    "ArchiveError",
    "ArchiveSummary",
    "archive_sweep",
    "check_against_spec",
    "restore_runs",
]

#: the files of a run that an archive keeps (interpretability.json, robustness.json and yardsticks.json only
#: when the run has them)
ARCHIVED_FILES = (
    RunDir.CONFIG,
    RunDir.RESULT,
    RunDir.METRICS,
    RunDir.INTERPRETABILITY,
    RunDir.ROBUSTNESS,
    RunDir.YARDSTICKS,
)
SPEC = "spec.yaml"


class ArchiveError(ValueError):
    """A sweep that cannot be archived as asked (names the run or the file)."""


@dataclass
class ArchiveSummary:
    """What :func:`archive_sweep` did: the runs archived, the runs still pending (``partial``), bytes written."""

    path: Path
    archived: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    bytes: int = 0


def _check_run(run: RunDir) -> None:
    """Refuse a finished run whose files are missing or cannot be read, naming it."""
    try:
        run.read_config()
        run.read_result()
        run.read_metrics()
        run.read_interpretability()
        run.read_robustness()
    except (CorruptFileError, ValueError, OSError) as e:
        raise ArchiveError(f"cannot archive run {run.path.name}: {e}") from None


def _runs(sweep: SweepDir, info: dict, partial: bool) -> tuple[list[str], list[str]]:
    """``(finished, pending)`` run ids of the sweep, checked; an unfinished run is refused unless ``partial``."""
    finished, pending = [], []
    for run_id in info.get("runs", []):
        run = sweep.run(run_id)
        if run.is_complete():
            _check_run(run)
            finished.append(run_id)
        elif partial:
            pending.append(run_id)
        else:
            raise ArchiveError(
                f"cannot archive {sweep.path}: run {run_id} is not finished ({run.file(run.RESULT)} is missing); "
                "finish the sweep first, or archive its finished runs with --partial"
            )
    return finished, pending


def archive_sweep(sweep_dir, dest, *, partial: bool = False) -> ArchiveSummary:
    """Copy the sweep folder ``sweep_dir`` into the archive ``dest`` (replacing what was there).

    Raises :class:`ArchiveError` naming the run or file when the folder is not a sweep, a run is
    unfinished (unless ``partial``: then only the finished runs are copied) or a finished run's
    files are missing or corrupt; nothing is written then."""
    sweep, dest = SweepDir(sweep_dir), Path(dest)
    if not sweep.file(sweep.SWEEP).is_file():
        raise ArchiveError(f"{sweep.path} is not a sweep folder: {sweep.file(sweep.SWEEP)} is missing")
    info = _read(sweep.file(sweep.SWEEP))
    spec_path = Path(info.get("spec_path", ""))
    if not spec_path.is_absolute():
        spec_path = Path(info.get("cwd", ".")) / spec_path
    if not spec_path.is_file():
        raise ArchiveError(f"cannot archive {sweep.path}: its spec {spec_path} is missing")
    finished, pending = _runs(sweep, info, partial)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        out = SweepDir(tmp)
        out.runs_dir.mkdir(parents=True)
        shutil.copyfile(spec_path, tmp / SPEC)
        shutil.copyfile(sweep.file(sweep.SWEEP), out.file(out.SWEEP))
        if sweep.file(sweep.RESULTS).is_file():
            rows = [r for r in sweep.read_results(completed_only=False) if r["run_id"] in set(finished)]
            out.write_results(rows)
        for run_id in finished:
            _copy_run(sweep.run(run_id), out.run(run_id))
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        _replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ArchiveSummary(dest, finished, pending, size)


def _copy_run(src: RunDir, dst: RunDir) -> None:
    dst.path.mkdir(parents=True)
    for name in ARCHIVED_FILES:
        if src.file(name).is_file():
            shutil.copyfile(src.file(name), dst.file(name))


def _replace(tmp: Path, dest: Path) -> None:
    """Put the folder ``tmp`` in the place of ``dest`` (two renames: ``dest`` is the old archive or the new)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _read(path: Path) -> dict:
    try:
        value = read_json(path)
    except CorruptFileError as e:
        raise ArchiveError(str(e)) from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{path} does not describe a sweep (a JSON object)")
    return value


def check_against_spec(archive, runs) -> None:
    """Refuse to continue a campaign whose spec changed under its archived runs: every run archived
    in ``archive`` must be one of ``runs`` (the spec's, :class:`~noisemod.experiments.spec.Run`) with
    the same settings (runtime ones aside). Raises :class:`ArchiveError` naming each run and the
    settings that differ (or that the spec no longer plans it); reads only, writes nothing."""
    from ..config import identity

    src = SweepDir(archive)
    if not src.runs_dir.is_dir():
        return
    planned = {r.run_id: identity(r.config) for r in runs}
    problems = []
    for path in sorted(p for p in src.runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        run = src.run(path.name)
        if not run.file(run.CONFIG).is_file():
            continue
        if path.name not in planned:
            problems.append(f"{path.name}: archived, but the spec no longer plans it")
            continue
        saved = identity(run.read_config())
        diff = [f"{k} {saved[k]!r} archived, {v!r} in the spec" for k, v in planned[path.name].items() if saved[k] != v]
        if diff:
            problems.append(f"{path.name}: {'; '.join(diff)}")
    if problems:
        raise ArchiveError(
            f"the spec changed under runs archived in {src.path} (nothing written; archive under another name, "
            f"or restore the spec):\n  " + "\n  ".join(problems)
        )


def restore_runs(archive, sweep_dir) -> list[str]:
    """Copy the archived runs that ``sweep_dir`` lacks into it (their config, result, metrics and
    interpretability: complete runs that a sweep skips). Returns the run ids restored."""
    src, dst = SweepDir(archive), SweepDir(sweep_dir)
    restored = []
    if not src.runs_dir.is_dir():
        return restored
    for path in sorted(p for p in src.runs_dir.iterdir() if p.is_dir()):
        run, target = src.run(path.name), dst.run(path.name)
        if target.path.exists() or not run.is_complete():
            continue
        tmp = dst.runs_dir / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            _copy_run(run, RunDir(tmp))
            tmp.rename(target.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        restored.append(path.name)
    return restored

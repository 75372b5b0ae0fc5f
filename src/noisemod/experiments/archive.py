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

An archive verifies itself (:func:`verify_archive`, ``noisemod archive --verify``): its
results.csv must be what the sweep would write from the runs' own files (config.json, result.json,
interpretability.json, robustness.json) and sweep.json, cell by cell, every run file must read,
and its spec.yaml must plan every run it holds (under sweep.json's budget), as it must when a
sweep is archived; ``noisemod claims`` and ``noisemod docs`` refuse an archive that does not verify.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..io import CorruptFileError, read_json
from ..rundir import ROW_FIELDS, RunDir, SweepDir, read_results_table, write_results_table

__all__ = [
    "ARCHIVED_FILES",
    "SPEC",
    "ArchiveError",
    "ArchiveSummary",
    "archive_sweep",
    "check_against_spec",
    "restore_runs",
    "verify_archive",
]

#: the files of a run that an archive keeps (interpretability.json, robustness.json, yardsticks.json and
#: timings.json only when the run has them)
ARCHIVED_FILES = (
    RunDir.CONFIG,
    RunDir.RESULT,
    RunDir.METRICS,
    RunDir.INTERPRETABILITY,
    RunDir.ROBUSTNESS,
    RunDir.YARDSTICKS,
    RunDir.TIMINGS,
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
    unfinished (unless ``partial``: then only the finished runs are copied, and a run the archive
    already holds finished keeps its archived copy while the sweep trains it again) or a finished
    run's files are missing or corrupt; nothing is written then."""
    sweep, dest = SweepDir(sweep_dir), Path(dest)
    if not sweep.file(sweep.SWEEP).is_file():
        raise ArchiveError(f"{sweep.path} is not a sweep folder: {sweep.file(sweep.SWEEP)} is missing")
    info = _read(sweep.file(sweep.SWEEP))
    spec_path = _spec_file(sweep, info)
    finished, pending = _runs(sweep, info, partial)
    old = SweepDir(dest)
    kept = [r for r in pending if old.run(r).is_complete() and old.file(old.RESULTS).is_file()]
    try:
        _spec_plans(spec_path, info.get("budget"), finished + kept)
    except ArchiveError as e:
        raise ArchiveError(f"cannot archive {sweep.path}: {e}") from None
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        out = SweepDir(tmp)
        out.runs_dir.mkdir(parents=True)
        shutil.copyfile(spec_path, tmp / SPEC)
        shutil.copyfile(sweep.file(sweep.SWEEP), out.file(out.SWEEP))
        rows = []
        if sweep.file(sweep.RESULTS).is_file():
            rows = [r for r in sweep.read_results(completed_only=False) if r["run_id"] in set(finished)]
        if kept:
            rows += [r for r in old.read_results(completed_only=False) if r["run_id"] in set(kept)]
        if rows or sweep.file(sweep.RESULTS).is_file():
            out.write_results(rows)
        for run_id in finished:
            _copy_run(sweep.run(run_id), out.run(run_id))
        for run_id in kept:
            _copy_run(old.run(run_id), out.run(run_id))
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        _replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ArchiveSummary(dest, finished, pending, size)


def _spec_file(sweep: SweepDir, info: dict) -> Path:
    """The spec the sweep ran: the file sweep.json names (relative to the sweep's working directory),
    else the bundled spec of that file's name (a sweep recorded ``experiments/NAME.yaml``, or a
    bundled spec of another installation); :func:`_spec_plans` then checks that it fits."""
    from .catalog import bundled_specs

    recorded = Path(info.get("spec_path", ""))
    path = recorded if recorded.is_absolute() else Path(info.get("cwd", ".")) / recorded
    if path.is_file():
        return path
    if recorded.stem in bundled_specs():
        return bundled_specs()[recorded.stem]
    raise ArchiveError(f"cannot archive {sweep.path}: its spec {path} is missing")


def _spec_plans(spec_path: Path, budget: str | None, run_ids) -> None:
    """The spec matches the runs: under the sweep's budget it plans every one of them (by run id)."""
    from .spec import expand, load_spec

    if budget is None:
        return
    try:
        planned = {r.run_id for r in expand(load_spec(spec_path), budget)}
    except (ValueError, OSError) as e:
        raise ArchiveError(f"its spec {spec_path} does not expand under budget {budget}: {e}") from None
    stray = [r for r in run_ids if r not in planned]
    if stray:
        raise ArchiveError(f"its spec {spec_path} does not plan run {stray[0]} under budget {budget}")


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


def verify_archive(path) -> int:
    """Check that the archive at ``path`` holds what it says: its results.csv is the table the
    sweep writes from the runs' own files (each row: sweep.json's spec and budget, config.json's
    settings, result.json's results, interpretability.json's and robustness.json's columns), one
    row per run folder and one run folder per row, every run file reads, and its spec.yaml plans
    every run under sweep.json's budget. Returns the number of runs; raises :class:`ArchiveError`
    naming the run and the column where results.csv and the run files disagree, or the file that
    cannot be read."""
    archive = SweepDir(path)
    table = archive.file(archive.RESULTS)
    if not table.is_file():
        raise ArchiveError(f"{archive.path} is not an archive: {table} is missing")
    try:
        rows = archive.read_results(completed_only=False)
        info = archive.read_sweep()
    except (CorruptFileError, ValueError) as e:
        raise ArchiveError(f"cannot read {archive.path}: {e}") from None
    _same_runs(archive, [r["run_id"] for r in rows])
    if archive.file(SPEC).is_file():
        try:
            _spec_plans(archive.file(SPEC), info.get("budget"), [r["run_id"] for r in rows])
        except ArchiveError as e:
            raise ArchiveError(f"{archive.path}: {e}") from None
    expected, sources = {}, {}
    for row in rows:
        expected[row["run_id"]], sources[row["run_id"]] = _derived_row(archive.run(row["run_id"]), info)
    derived = _retyped(list(expected.values()))
    for row in rows:
        _compare(archive, row, derived[row["run_id"]], expected[row["run_id"]], sources[row["run_id"]])
    return len(rows)


def _same_runs(archive: SweepDir, ids: list[str]) -> None:
    """One row per run folder and one run folder per row."""
    folders = sorted(p.name for p in archive.runs_dir.iterdir() if p.is_dir()) if archive.runs_dir.is_dir() else []
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ArchiveError(f"{archive.file(archive.RESULTS)} has run {twice[0]} on more than one row")
    for run_id in ids:
        if run_id not in folders:
            raise ArchiveError(
                f"{archive.path}: run {run_id} is in {archive.RESULTS} but {archive.run(run_id).path} is missing"
            )
    for name in folders:
        if name not in ids:
            raise ArchiveError(f"{archive.path}: run {name} ({archive.run(name).path}) has no row in {archive.RESULTS}")


def _derived_row(run: RunDir, info: dict) -> tuple[dict, dict]:
    """The results.csv row of a finished run as the sweep writes it, from the run's files and the
    sweep's sweep.json, and the file each cell comes from; an error names a file that cannot be read."""
    try:
        run.read_config()  # every setting valid
        settings = read_json(run.file(run.CONFIG))  # as written: the sweep's row took the same values
        results = {k: v for k, v in run.read_result().items() if not isinstance(v, dict)}
        run.read_metrics()
        interpretability, robustness = run.interpretability_columns(), run.robustness_columns()
    except (CorruptFileError, ValueError, OSError, KeyError, TypeError) as e:
        raise ArchiveError(f"{run.path.parent.parent}: run {run.path.name}: cannot read its files: {e}") from None
    parts = [
        ({"run_id": run.path.name, "spec": info.get("spec"), "budget": info.get("budget")}, SweepDir.SWEEP),
        (settings, run.CONFIG),
        ({"status": "completed", **results}, run.RESULT),
        (interpretability, run.INTERPRETABILITY),
        (robustness, run.ROBUSTNESS),
    ]
    row, sources = {}, {}
    for values, source in parts:
        row.update(values)
        sources.update(dict.fromkeys(values, source))
    return row, sources


def _retyped(rows: list[dict]) -> dict[str, dict]:
    """The rows as results.csv holds them once read (written and read back by the table's owner,
    :mod:`noisemod.rundir`), by run id, so that both sides of a comparison are typed alike."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_results_table(Path(tmp) / SweepDir.RESULTS, rows)
        return {r["run_id"]: r for r in read_results_table(path, completed_only=False)}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _compare(archive: SweepDir, row: dict, derived: dict, raw: dict, sources: dict) -> None:
    """Each column of the row against the run files' value. A setting added since the run was
    written, absent from its config.json, is not compared when results.csv lacks it too, and
    matches its default when results.csv has it (the sweep read the config with defaults)."""
    from ..config import field_names, get_setting

    run = archive.run(row["run_id"])
    for column in dict.fromkeys([*row, *derived]):
        if column not in row and column not in raw:
            continue
        if column not in raw and column in field_names() and _same(row[column], get_setting(column).default):
            continue
        have, want = row.get(column), derived.get(column)
        if not _same(have, want):
            source = sources.get(column) or _source(column)
            where = archive.file(source) if source == SweepDir.SWEEP else run.file(source)
            told = f"{want!r} in {where}" if column in raw else f"missing from {where}"
            raise ArchiveError(
                f"{archive.path}: run {row['run_id']}: {column} is {have!r} in {archive.RESULTS} but {told}"
            )


def _source(column: str) -> str:
    """The run file a column of results.csv comes from, for a column the run's files lack."""
    from ..config import field_names
    from ..rundir import RESULT_FIELDS, robustness_column

    if column in ROW_FIELDS:
        return RunDir.RESULT if column == "status" else SweepDir.SWEEP
    if column in field_names():
        return RunDir.CONFIG
    if column in RESULT_FIELDS:
        return RunDir.RESULT
    if column.startswith(robustness_column(0).partition("eps")[0] + "eps"):
        return RunDir.ROBUSTNESS
    return RunDir.INTERPRETABILITY

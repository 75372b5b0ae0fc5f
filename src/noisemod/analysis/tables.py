"""The result tables of a sweep folder or an archive, read and grouped: what figures, the report,
the claims and the docs are computed from.

A sweep folder (:class:`noisemod.rundir.SweepDir`) holds ``results.csv`` (one row per run: its id,
every setting and every scalar result, typed when read), ``sweep.json`` and a run directory per run
(``metrics.csv`` along training, ``interpretability.json``, ...). Which runs belong together comes
from the setting descriptions (conditions, repeats) and the method registry (which methods use a
setting). Nothing here draws or formats.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..config import condition_names, get_setting, run_id_parts
from ..rundir import RunDir, SweepDir, robustness_column

__all__ = [
    "CURVES",
    "METRICS",
    "ROBUST_PREFIX",
    "aggregate",
    "column_value",
    "condition_label",
    "gains_over_standard",
    "has_checkpoints",
    "interpretability_scores",
    "is_number",
    "load_results",
    "main_conditions",
    "read_sweep",
    "representative",
    "robust_radius",
    "run_path",
    "series",
    "training_rows",
    "unique",
]

PathLike = str | os.PathLike

#: the main results of a run, with their names for display
METRICS = {"test_accuracy": "test accuracy", "vii": "VII"}
#: metrics.csv's columns followed along training (:func:`training_rows`)
CURVES = {"val_vii": "VII, 256 validation images", "val_accuracy": "validation accuracy"}
#: the prefix of results.csv's robust accuracy columns after training: ``robust_accuracy_eps<eps>``
ROBUST_PREFIX = robustness_column(0).partition("eps")[0] + "eps"


def load_results(sweep_dir: PathLike, *, completed_only: bool = True) -> list[dict]:
    """The rows of ``sweep_dir/results.csv``, each value typed by its description (a setting's
    type, a result's type): by default only completed runs. A missing or broken file, or one
    without a completed run, is an error naming it (:meth:`noisemod.rundir.SweepDir.read_results`)."""
    return SweepDir(sweep_dir).read_results(completed_only=completed_only)


def read_sweep(sweep_dir: PathLike) -> dict:
    """``sweep_dir/sweep.json`` (spec name, budget, run ids, reproduce command), ``{}`` if absent."""
    return SweepDir(sweep_dir).read_sweep()


def unique(values: Iterable) -> list:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def is_number(v) -> bool:
    """A finite int or float (not a bool): a value a table can average."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def robust_radius(row: Mapping, which: str) -> str | None:
    """The robust accuracy column of the row at its larger (``which="large"``) or smaller (``"small"``)
    radius measured after training (``robust_accuracy_eps<eps>``, with a value); None without one."""
    radii = sorted(
        (float(k[len(ROBUST_PREFIX) :]), k) for k, v in row.items() if k.startswith(ROBUST_PREFIX) and is_number(v)
    )
    return radii[-1 if which == "large" else 0][1] if radii else None


def column_value(row: Mapping, name: str) -> float | None:
    """A number of the row: a column, or ``robust@large`` / ``robust@small`` (the robust accuracy at the
    larger or smaller radius measured after training, :func:`robust_radius`); None when absent or NaN."""
    if name in ("robust@large", "robust@small"):
        name = robust_radius(row, name.partition("@")[2])
        if name is None:
            return None
    value = row.get(name)
    return float(value) if is_number(value) else None


def aggregate(
    rows: Sequence[Mapping],
    keys: Sequence[str] = ("dataset", "model", "method"),
    metrics: Sequence[str] = tuple(METRICS),
) -> list[dict]:
    """Group ``rows`` by ``keys`` (groups in order of first appearance) and give, per metric,
    ``<metric>_mean`` and ``<metric>_std`` over the group's runs (the sample standard deviation,
    0 for a single run; missing or NaN values are left out), ``<metric>_ci`` (the 95% t interval of
    the mean, :func:`noisemod.analysis.stats.summarize`; None under two values), plus ``n`` runs and their
    ``seeds``."""
    from .stats import summarize

    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r)
    out = []
    for key, members in groups.items():
        agg = {**dict(zip(keys, key)), "n": len(members), "seeds": [r.get("seed") for r in members]}
        for m in metrics:
            values = [float(r[m]) for r in members if is_number(r.get(m))]
            agg[f"{m}_mean"] = statistics.fmean(values) if values else math.nan
            agg[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            summary = summarize(values) if len(values) > 1 else None
            agg[f"{m}_ci"] = (summary.ci_low, summary.ci_high) if summary else None
        out.append(agg)
    return out


def series(rows: Sequence[Mapping], vary: str, method: str | None = None) -> list[dict]:
    """The largest set of runs that share every condition but ``vary`` (seeds are repeats), when it
    holds at least two values of ``vary``; else ``[]``. Only runs of ``method``, or by default,
    for a method setting such as ``beta``, of the methods that use it."""
    from ..methods import methods_using

    methods = [method] if method is not None else methods_using(vary) if get_setting(vary).method else None
    fixed = [k for k in condition_names() if k != vary]
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        if methods is None or r.get("method") in methods:
            groups[tuple(r.get(k) for k in fixed)].append(r)
    best = max(groups.values(), key=lambda g: (len(unique(r.get(vary) for r in g)), len(g)), default=[])
    return list(best) if len(unique(r.get(vary) for r in best)) >= 2 else []


def _condition(row: Mapping) -> tuple:
    """The settings that define a run's experimental condition (all but the seed and the runtime settings)."""
    return tuple(row.get(k) for k in condition_names())


def main_conditions(rows: Sequence[Mapping], keys: Sequence[str] = ("dataset", "model", "method")) -> list[dict]:
    """Per ``keys`` group, the runs (all seeds) of one condition: the :func:`representative` run's, so that
    nm runs of other betas or noises do not mix into the nm bar of Figure 3."""
    keep = []
    for key in unique(tuple(r.get(k) for k in keys) for r in rows):
        group = [r for r in rows if tuple(r.get(k) for k in keys) == key]
        main = _condition(representative(group))
        keep += [r for r in group if _condition(r) == main]
    return keep


def run_path(sweep_dir: PathLike, row: Mapping) -> Path:
    return SweepDir(sweep_dir).run(row["run_id"]).path


def representative(rows: Sequence[Mapping]) -> Mapping:
    """One run to show for a group: the one whose method settings are at their defaults (the paper's
    settings: beta 0.5, Gaussian noise), setting by setting in the method's order, then the lowest seed."""
    from ..methods import METHODS

    def key(r):
        used = METHODS[r["method"]].settings if r.get("method") in METHODS else ()
        return (*(r.get(s) != get_setting(s).default for s in used), r.get("seed") or 0)

    return min(rows, key=key)


def training_rows(sweep_dir: PathLike, rows: Sequence[Mapping], columns: Sequence[str] = tuple(CURVES)) -> list[dict]:
    """One row per run and epoch from the runs' metrics.csv: ``dataset``, ``model``, ``method``,
    ``label`` (:func:`condition_label`), ``seed``, ``epoch`` and ``columns``; only the epochs where
    every column has a value (runs before ``val_vii`` have none)."""
    out = []
    for r in rows:
        keys = {k: r.get(k) for k in ("dataset", "model", "method", "seed")}
        for m in RunDir(run_path(sweep_dir, r)).read_metrics():
            if all(is_number(m.get(c)) for c in columns):
                out.append({**keys, "label": condition_label(r), "epoch": m["epoch"], **{c: m[c] for c in columns}})
    return out


def condition_label(row: Mapping) -> str:
    """A condition's name for a legend: its method's run-id parts, e.g. ``nm b0.25 gaussian``."""
    from types import SimpleNamespace

    from ..methods import METHODS

    if row.get("method") not in METHODS:
        return str(row.get("method"))
    values = {s: row.get(s, get_setting(s).default) for s in METHODS[row["method"]].settings}
    return " ".join(run_id_parts(SimpleNamespace(method=row["method"], **values)))


def interpretability_scores(rows: Sequence[Mapping]) -> dict[str, list[str]]:
    """Explainer -> the metrics the rows have scores of (results.csv's ``<explainer>_<metric>`` columns)."""
    from ..explainers import EXPLAINERS
    from ..metrics import METRICS
    from ..rundir import interpretability_column

    found = {}
    for e in EXPLAINERS:
        metrics = [m for m in METRICS if any(is_number(r.get(interpretability_column(e, m))) for r in rows)]
        if metrics:
            found[e] = metrics
    return found


#: where a run's time goes (:func:`time_steps`), in the order a run spends it
TIME_STEPS = (
    "epochs",
    "epoch checks",
    "setup",
    "final evaluation",
    "interpretability",
    "robustness",
    "randomization",
    "yardsticks",
)


def time_steps(sweep_dir: PathLike, row: Mapping) -> dict[str, float] | None:
    """Where one run's wall time went, in seconds: ``epochs`` (training steps, result.json's
    ``train_seconds``), ``epoch checks`` (each epoch's validation, method check, VII and checkpoints:
    metrics.csv's ``end_seconds``), ``setup`` (data, model and compilation), ``final evaluation``
    (the rest of the training process: process start, the test set and a method's robust accuracy),
    then each measurement after training (timings.json); ``total``, their sum. None for a run
    without timings.json (run before the sweep recorded it). A run resumed after its sweep was
    stopped adds to timings.json only the process that finished, while its epochs count every
    process's: the training process then counts as its epochs, checks and setup (the stopped
    process's start and unfinished epoch are not counted)."""
    run = RunDir(run_path(sweep_dir, row))
    timings = run.read_timings()
    if "train" not in timings:
        return None
    result = run.read_result()
    epochs = float(result.get("train_seconds") or 0.0)
    checks = sum(m.get("end_seconds") or 0.0 for m in run.read_metrics())
    setup = float(result.get("setup_seconds") or 0.0) + float(result.get("compile_seconds") or 0.0)
    out = {"epochs": epochs, "epoch checks": checks, "setup": setup}
    out["final evaluation"] = max(0.0, timings["train"] - epochs - checks - setup)
    out.update({step: timings.get(step, 0.0) for step in TIME_STEPS[4:]})
    out["total"] = sum(out[step] for step in TIME_STEPS)
    return out


def time_left(sweep_dir: PathLike, timed_runs: Iterable[tuple[Mapping, dict | None]] | None = None) -> dict:
    """What an archive's sweep has still to train, and how long that takes by the archive's own
    timings (:func:`time_steps`; ``timed_runs``, each timed run's row and steps, where the caller
    has read them already): ``planned`` (its spec's runs under its budget), ``order`` (their ids,
    in the spec's order), ``left`` (the ids of the runs still to train: not archived, or archived
    without what the spec now asks and so trained again, as
    :func:`noisemod.experiments.plan.plan_sweep` plans them), ``timed`` (those of them whose dataset
    and model have a timed run), ``seconds`` (run id -> one core's seconds, for each of ``timed``:
    the mean total of the timed runs of its dataset, model and method, else of its dataset and
    model), ``hours`` (their sum, in hours), ``untimed`` (the (dataset, model) of the other runs
    left), ``jobs`` (runs at a time in the sweep's recorded command, 1 when it names none) and
    ``conditions`` ((dataset, model, :func:`condition_label`) -> (runs archived with all the spec
    asks of them, so not trained again; runs planned), in the spec's order)."""
    import shlex

    from ..experiments.archive import SPEC
    from ..experiments.plan import plan_sweep
    from ..experiments.spec import load_spec

    sweep = SweepDir(sweep_dir)
    info = sweep.read_sweep()
    plan = plan_sweep(load_spec(sweep.file(SPEC)), info["budget"], sweep)
    if timed_runs is None:
        timed_runs = ((row, time_steps(sweep_dir, row)) for row in load_results(sweep_dir))
    totals: dict[tuple, list[float]] = defaultdict(list)
    for row, steps in timed_runs:
        if steps is not None:
            totals[(row["dataset"], row["model"], row["method"])].append(steps["total"])
            totals[(row["dataset"], row["model"])].append(steps["total"])
    left = [p.run for p in plan.runs if p.action != "skip"]
    conditions: dict[tuple, list[int]] = {}
    for p in plan.runs:
        c = p.run.config
        count = conditions.setdefault((c.dataset, c.model, condition_label(c.to_dict())), [0, 0])
        count[0] += p.action == "skip"
        count[1] += 1
    seconds, untimed = {}, []
    for run in left:
        c = run.config
        known = totals.get((c.dataset, c.model, c.method)) or totals.get((c.dataset, c.model))
        if known:
            seconds[run.run_id] = statistics.fmean(known)
        else:
            untimed.append((c.dataset, c.model))
    words = shlex.split(info.get("command", ""))
    jobs = int(words[words.index("--jobs") + 1]) if "--jobs" in words[:-1] else 1
    return {
        "planned": len(plan.runs),
        "order": [p.run.run_id for p in plan.runs],
        "left": [r.run_id for r in left],
        "timed": list(seconds),
        "seconds": seconds,
        "hours": sum(seconds.values()) / 3600,
        "untimed": untimed,
        "jobs": jobs,
        "conditions": {k: tuple(v) for k, v in conditions.items()},
    }


def with_yardsticks(
    sweep_dir: PathLike, rows: Sequence[Mapping], names: Sequence[str], *, images: str | None = None
) -> list[dict]:
    """The rows with the value of each yardstick of ``names`` read from their run's yardsticks.json
    (None where the run has not measured it); with ``images``, also the number of test images the
    run's yardsticks were measured on, under that key (None without yardsticks.json). Without
    ``names`` nothing is read: the rows as they are."""
    if not names:
        return [dict(r) for r in rows]
    sweep = SweepDir(sweep_dir)
    out = []
    for r in rows:
        entry = sweep.run(r["run_id"]).read_yardsticks()
        values = entry.get("values", {})
        out.append({**r, **{m: values.get(m) for m in names}, **({images: entry.get("n")} if images else {})})
    return out


def has_checkpoints(sweep_dir: PathLike, rows: Sequence[Mapping]) -> bool:
    """Whether every finished run of the sweep still has its best checkpoint (an archive has none)."""
    return all(RunDir(run_path(sweep_dir, r)).file(RunDir.BEST).is_file() for r in rows)


#: the metrics of the headline figure, with their names for display (each has its ``_floor`` column)
GAINS = {"gradient_vii": "VII", "gradient_alignment": "alignment"}


def gains_over_standard(rows: Sequence[Mapping], metrics: Sequence[str] = tuple(GAINS)) -> list[dict]:
    """Per dataset and model with standard training, each condition (standard's included, first) against
    standard training: ``dataset``, ``model``, ``method``, ``label`` (:func:`condition_label`), ``n`` runs,
    ``time_ratio`` (its mean ``train_seconds`` over standard's) and ``time_ratio_ci`` (its 95% interval,
    :func:`noisemod.analysis.stats.ratio`; None for standard training itself), ``robust`` and ``robust_ci``
    (its mean robust accuracy at the dataset's small radius, :func:`robust_radius`, with its 95% t
    interval; None without) at ``eps``; per metric ``m``: ``m_diff``, ``m_ci`` (the difference of seed
    means with its 95% Welch interval, :func:`noisemod.analysis.stats.compare`; None under two runs a
    side, and for standard training itself, at 0) and ``m_floor_gap`` (the mean ``m_floor`` of standard's
    runs, a freshly initialized model of each seed, less standard's mean)."""
    from .stats import compare, ratio, summarize

    def values(runs, column):
        return [v for r in runs if (v := column_value(r, column)) is not None]

    out = []
    for pair in unique((r.get("dataset"), r.get("model")) for r in rows):
        here = [dict(r, label=condition_label(r)) for r in rows if (r.get("dataset"), r.get("model")) == pair]
        standard = [r for r in here if r["label"] == "standard"]
        if not standard:
            continue
        standard_time = values(standard, "train_seconds")
        for label in sorted(unique(r["label"] for r in here), key=lambda lb: lb != "standard"):
            runs = [r for r in here if r["label"] == label]
            radius = robust_radius(runs[0], "small")
            robust = values(runs, radius) if radius else []
            time = values(runs, "train_seconds")
            point = {"dataset": pair[0], "model": pair[1], "method": runs[0].get("method"), "label": label}
            r = ratio(time, standard_time) if time and standard_time else None
            point |= {"n": len(runs), "time_ratio": r.ratio if r else math.nan}
            point["time_ratio_ci"] = (r.ci_low, r.ci_high) if r and label != "standard" else None
            summary = summarize(robust) if robust else None
            point |= {"robust": summary and summary.mean, "robust_ci": summary and (summary.ci_low, summary.ci_high)}
            point["eps"] = float(radius[len(ROBUST_PREFIX) :]) if radius else None
            for m in metrics:
                a, b, floor = values(runs, m), values(standard, m), values(standard, m + "_floor")
                c = compare(a, b) if len(a) > 1 and len(b) > 1 else None
                point[f"{m}_diff"] = 0.0 if label == "standard" and b else c.diff if c else None
                point[f"{m}_ci"] = (c.ci_low, c.ci_high) if c and label != "standard" else None
                point[f"{m}_floor_gap"] = statistics.fmean(floor) - statistics.fmean(b) if floor and b else None
            out.append(point)
    return out

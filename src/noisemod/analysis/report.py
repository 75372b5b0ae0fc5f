"""A sweep's report: one self-contained HTML page and a Markdown twin.

``write_report(DIR)`` reads ``DIR/results.csv``, ``DIR/sweep.json`` and each run's
``result.json``, makes the figures (:func:`noisemod.analysis.figures.make_figures`, into ``DIR/figures/``)
and writes ``DIR/report.html`` (figures embedded as base64 PNG, inline CSS, no external
resources) and ``DIR/report.md`` (linking the PNG files). Both hold the spec and budget, the
settings, the results (mean ± std and the 95% interval over seeds per condition, then every run),
each condition against standard training (difference, Welch interval, Welch's and the exact
permutation p, Holm-corrected per metric), the figures, the hardware and versions, and the
commands that reproduce the report. ``report.json`` holds the same statistics as data.
"""

from __future__ import annotations

import base64
import html
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config import condition_names, field_names
from ..io import atomic_write, write_json
from ..rundir import RunDir, SweepDir
from .claims import comparisons
from .figures import NEED_CHECKPOINTS, make_figures
from .formatting import group_mean_std, markdown_table, number, p_value, setting, signed
from .tables import (
    ROBUST_PREFIX,
    aggregate,
    condition_label,
    has_checkpoints,
    interpretability_scores,
    is_number,
    load_results,
    read_sweep,
)

__all__ = ["report_sections", "write_report"]

METRIC_COLUMNS = ("test_accuracy", "robust_accuracy", "vii", "train_seconds")
RUN_COLUMNS = ("test_accuracy", "vii", "best_epoch", "val_accuracy", "train_seconds")
CAPTIONS = {
    "fig1": "Figure 1: test inputs and the input-gradients of standard, noise-modulated and adversarially "
    "trained models, each scaled to [0, 1].",
    "fig2": "Figure 2: noise modulation of test inputs: input, carrier, modulated and demodulated input, in "
    "space and spectrum (DFT magnitude, scaled to [0, 1]).",
    "fig3": "Figure 3: test accuracy and VII per model and method (mean ± std over seeds).",
    "fig4": "Figure 4: the trade-off between VII and accuracy as beta varies, with the gradient map of one "
    "test image per beta.",
    "fig5": "Figure 5: test accuracy and VII per noise, and the noises scaled to [0, 1].",
    "tradeoff": "Test accuracy against VII per method and setting (mean ± std over seeds): methods compared at "
    "equal accuracy cost.",
    "training": "Along training: VII of 256 validation images (spread over the split, x_bar their mean) and "
    f"validation accuracy per epoch, per method (mean, band ± one std over seeds; from each run's {RunDir.METRICS}). "
    "Its x_bar is not the test set's: on MNIST it is exactly 0 at more border pixels, which then drop out of VII, "
    "so its level, and for an MLP its ranking of methods, can differ from the results table's VII.",
}


def _settings(rows: Sequence[Mapping]) -> tuple[dict, dict]:
    """(fixed, varied): the TrainConfig fields with one value across the runs, and those with several."""
    values = {k: list(dict.fromkeys(r.get(k) for r in rows)) for k in field_names() if k in rows[0]}
    fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
    varied = {k: v for k, v in values.items() if len(v) > 1}
    return fixed, varied


def _environment(sweep_dir: Path, rows: Sequence[Mapping]) -> list[dict]:
    """The distinct hardware/software records (device, processes, versions, git SHA) of the runs' result.json."""
    seen = {}
    for r in rows:
        run = SweepDir(sweep_dir).run(r["run_id"])
        result = run.read_result() if run.is_complete() else r
        record = {
            "device": result.get("train_device"),
            "world_size": result.get("world_size"),
            **(result.get("versions") or {}),
            "git_sha": result.get("git_sha"),
        }
        seen.setdefault(tuple(record.items()), record)
    return list(seen.values())


def _commands(sweep_dir: Path, sweep: Mapping, rows: Sequence[Mapping], data_root: str | None) -> list[str]:
    """The sweep's own reproduce command (sweep.json, run from its working directory), else one
    built from the spec and budget; then the report's."""
    spec, budget = sweep.get("spec") or rows[0].get("spec"), sweep.get("budget") or rows[0].get("budget")
    commands = [f"cd {shlex.quote(sweep['cwd'])}"] if sweep.get("command") and sweep.get("cwd") else []
    if sweep.get("command"):
        commands.append(sweep["command"])
    elif spec:
        commands.append(
            shlex.join(
                ["noisemod", "sweep", str(spec), "--out", str(sweep_dir)]
                + (["--budget", str(budget)] if budget else [])
            )
        )
    commands.append(
        shlex.join(["noisemod", "report", str(sweep_dir)] + (["--data-root", str(data_root)] if data_root else []))
    )
    return commands


def report_sections(sweep_dir, *, data_root: str | None = None, figures: Sequence[Path] = ()) -> dict:
    """Everything the report shows, as plain data: ``title``, ``summary`` lines, ``settings``,
    ``results``, ``runs`` and ``environment`` tables (``(header, rows)``), ``figures`` (name ->
    PNG path) and ``commands``. Settings, results and environment come from the completed runs;
    the table of every run also lists failed ones."""
    sweep_dir = Path(sweep_dir)
    every = load_results(sweep_dir, completed_only=False)
    rows = [r for r in every if r.get("status", "completed") == "completed"]
    failed = [str(r["run_id"]) for r in every if r.get("status", "completed") != "completed"]
    sweep = read_sweep(sweep_dir)
    fixed, varied = _settings(rows)
    spec = sweep.get("spec") or rows[0].get("spec") or sweep_dir.name
    budget = sweep.get("budget") or rows[0].get("budget")

    def values(key):
        return ", ".join("all" if v is None else setting(v) for v in dict.fromkeys(r.get(key) for r in rows))

    summary = [
        f"spec: {spec}" + (f" ({sweep['description']})" if sweep.get("description") else ""),
        f"budget: {budget or 'n/a'}",
        f"runs: {len(rows)} completed" + (f", {len(failed)} failed ({', '.join(failed)})" if failed else ""),
        f"epochs: {values('epochs')}",
        f"seeds: {values('seed')}",
        f"train_size (images): {values('train_images')}",
    ]
    if not has_checkpoints(sweep_dir, rows):
        summary.append(
            "an archive (no checkpoints): the figures that are gradient maps ("
            + ", ".join(NEED_CHECKPOINTS)
            + ") are left out, and figure 4 has no maps; rerun the sweep to make them"
        )
    settings = (
        ["setting", "value"],
        [[k, setting(v)] for k, v in fixed.items()]
        + [[k, ", ".join(map(setting, v)) + " (varied)"] for k, v in varied.items()],
    )

    conditions, groups, results = _results(rows, varied)
    run_keys = [
        "run_id",
        *(["status"] if "status" in every[0] else []),
        *(k for k in varied if k != "data_root"),
        *(["seed"] if "seed" not in varied else []),
    ]
    runs = (
        [*run_keys, *RUN_COLUMNS],
        [[*(setting(r.get(k)) for k in run_keys), *(number(r.get(k)) for k in RUN_COLUMNS)] for r in every],
    )
    env = _environment(sweep_dir, rows)
    env_keys = list(dict.fromkeys(k for e in env for k in e))
    compared = comparisons(rows, conditions)
    return {
        "comparisons": _comparison_table(compared),
        "statistics": {"conditions": _plain(groups), "comparisons": compared},
        "interpretability": _interpretability_table(rows),
        "title": f"noisemod sweep report: {spec}",
        "summary": summary,
        "settings": settings,
        "results": results,
        "runs": runs,
        "environment": (env_keys, [[number(e.get(k)) for k in env_keys] for e in env]),
        "figures": {p.stem: p for p in figures if p.suffix == ".png"},
        "commands": _commands(sweep_dir, sweep, rows, data_root),
    }


def _results(rows: Sequence[Mapping], varied: Mapping) -> tuple[list, list, tuple]:
    """(the condition settings, the aggregated groups, the results table): one row per condition."""
    conditions = [k for k in ("dataset", "model", "method") if k not in varied] + [
        k for k in varied if k in condition_names()
    ]
    columns = [c for c in METRIC_COLUMNS if c != "robust_accuracy" or any(r.get(c) is not None for r in rows)]
    radii = sorted(
        {k for r in rows for k in r if k.startswith(ROBUST_PREFIX)}, key=lambda k: float(k[len(ROBUST_PREFIX) :])
    )
    columns[-1:-1] = radii  # robustness after training (PGD-50 at the dataset's radii), before train_seconds
    groups = _in_order(aggregate(rows, keys=conditions, metrics=columns), conditions)
    table = (
        [*conditions, "runs", *columns],
        [[*(setting(g[k]) for k in conditions), str(g["n"]), *(group_mean_std(g, m) for m in columns)] for g in groups],
    )
    return conditions, groups, table


def _in_order(groups: list[dict], keys: Sequence[str]) -> list[dict]:
    """Groups in the order their text settings first appear, and by their numeric settings within
    (beta 0, 0.1, ..., 1 in order, whatever order the sweep ran them in)."""

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    first: dict[tuple, int] = {}
    for g in groups:
        first.setdefault(tuple(g[k] for k in keys if not number(g[k])), len(first))
    return sorted(
        groups,
        key=lambda g: (first[tuple(g[k] for k in keys if not number(g[k]))], [g[k] for k in keys if number(g[k])]),
    )


TABLES = (
    ("settings", "Settings"),
    ("results", "Results (mean ± std [95% CI] over seeds)"),
    (
        "comparisons",
        "Against standard training of the same dataset, model and budget (a - standard; p: Welch's t, the "
        "exact permutation test, Holm over the sweep per metric)",
    ),
    (
        "interpretability",
        "Interpretability (mean ± std [95% CI] over seeds, then the reference to beat: [floor: a freshly "
        "initialized model] or, for deletion and insertion, [random order: the same model, elements in a random "
        "order]; ↑ higher is better, ↓ lower)",
    ),
    ("runs", "Every run"),
)


def _comparison_table(compared: Sequence[Mapping]) -> tuple[list, list]:
    header = ["dataset", "model", "condition", "metric", "a (n)", "standard (n)", "a - standard [95% CI]"]
    header += ["p Welch", "p permutation", "p Holm"]
    body = []
    for e in compared:
        c = e["comparison"]
        body.append(
            [setting(e.get("dataset")), setting(e.get("model")), e["condition"], e["metric"]]
            + [f"{number(e[side]['mean'])} ({e[side]['n']})" for side in ("a", "standard")]
            + [signed(c["diff"], c["ci_low"], c["ci_high"], digits=4), p_value(c["p_welch"])]
            + [p_value(c["p_permutation"]), p_value(c["p_holm"])]
        )
    return header, body


def _plain(groups: Sequence[Mapping]) -> list[dict]:
    """Aggregated groups as JSON-ready dicts (NaN -> None, tuples -> lists)."""

    def plain(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return list(v) if isinstance(v, tuple) else v

    return [{k: plain(v) for k, v in g.items()} for g in groups]


def _interpretability_table(rows: Sequence[Mapping]) -> tuple[list, list]:
    """Per dataset, model, method condition and explainer: each metric's mean ± std and, in brackets,
    the reference it must beat: its floor (a freshly initialized model), or for a metric with a
    random-order reference (deletion, insertion) that reference, the same model with the elements in
    a random order (a randomized model's class probability is flat, so its deletion score is no bar).
    The header marks each metric's direction (``vii ↑``, ``deletion ↓``)."""
    from ..metrics import get_metric
    from ..rundir import interpretability_column

    found = interpretability_scores(rows)
    scored = list(dict.fromkeys(m for ms in found.values() for m in ms))
    references = {get_metric(m).reference for m in scored} - {None}
    metrics = [m for m in scored if m not in references]
    arrows = [f"{m} {'↑' if get_metric(m).higher_is_better else '↓'}" for m in metrics]
    header = ["dataset", "model", "condition", "explainer", "runs", *arrows]
    body = []
    labelled = [dict(r, label=condition_label(r)) for r in rows]
    for explainer in found:
        bars = {m: get_metric(m).reference or m + "_floor" for m in metrics}
        keys = [interpretability_column(explainer, s) for m in metrics for s in (m, bars[m])]
        have = [r for r in labelled if r.get(interpretability_column(explainer, found[explainer][0])) is not None]
        for g in aggregate(have, keys=("dataset", "model", "label"), metrics=keys):
            cells = []
            for m in metrics:
                text = group_mean_std(g, interpretability_column(explainer, m))
                bar = g[interpretability_column(explainer, bars[m]) + "_mean"]
                name = "floor" if bars[m].endswith("_floor") else "random order"
                cells.append(f"{text} [{name} {number(bar)}]" if is_number(bar) else text)
            body.append([setting(g["dataset"]), setting(g["model"]), g["label"], explainer, str(g["n"]), *cells])
    return header, body


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}td{font-variant-numeric:tabular-nums}figure{margin:1.5em 0}img{max-width:100%}
figcaption{font-size:14px;color:#555}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}"""


def _html(s: dict) -> str:
    def table(header, body):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"

    parts = [
        f"<h1>{html.escape(s['title'])}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in s["summary"]) + "</ul>",
    ]
    parts += [f"<h2>{title}</h2>{table(*s[key])}" for key, title in TABLES if s[key][1]]
    if s["figures"]:
        parts.append("<h2>Figures</h2>")
    for name, png in s["figures"].items():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(CAPTIONS.get(name, name))}</figcaption></figure>"
        )
    parts.append(f"<h2>Hardware and versions</h2>{table(*s['environment'])}")
    parts.append("<h2>Reproduce</h2><pre>" + html.escape("\n".join(s["commands"])) + "</pre>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(s["title"])}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def _markdown(s: dict, base: Path) -> str:
    table = markdown_table
    parts = [f"# {s['title']}", "\n".join(f"- {line}" for line in s["summary"])]
    parts += [f"## {title}\n\n{table(*s[key])}" for key, title in TABLES if s[key][1]]
    if s["figures"]:
        parts.append("## Figures")
    for name, png in s["figures"].items():
        parts.append(
            f"![{name}]({png.relative_to(base).as_posix() if png.is_relative_to(base) else png})\n\n"
            f"{CAPTIONS.get(name, name)}"
        )
    parts.append(f"## Hardware and versions\n\n{table(*s['environment'])}")
    parts.append("## Reproduce\n\n```bash\n" + "\n".join(s["commands"]) + "\n```")
    return "\n\n".join(parts) + "\n"


def write_report(sweep_dir, *, data_root: str | None = None) -> tuple[Path, Path]:
    """Make the sweep's figures and write ``sweep_dir/report.html`` (self-contained) and
    ``sweep_dir/report.md``, atomically; returns both paths. A missing or empty results.csv is
    an error naming the file."""
    sweep_dir = Path(sweep_dir)
    load_results(sweep_dir)  # fail on missing results before making anything
    figures = make_figures(sweep_dir, data_root=data_root)
    sections = report_sections(sweep_dir, data_root=data_root, figures=figures)
    sweep = SweepDir(sweep_dir)
    html_path = atomic_write(sweep.file(sweep.REPORT_HTML), lambda f: f.write(_html(sections).encode("utf-8")))
    md = _markdown(sections, sweep_dir).encode("utf-8")
    md_path = atomic_write(sweep.file(sweep.REPORT_MD), lambda f: f.write(md))
    write_json(sweep.file(sweep.REPORT_JSON), sections["statistics"])
    return html_path, md_path

"""The generated parts of the docs, computed from the results archive (``results/``).

A generated part of a Markdown file sits between two comments; what is between them is
replaced, the rest of the file is kept as written::

    <!-- generated: verdicts -->
    ...
    <!-- end generated -->

The kinds (one word, then its arguments):

``verdicts``
    the verdict table of the claims file (:func:`noisemod.analysis.claims.verdict_table`)
``bottom-line [ID...]``
    one line per claim (or per claim named): its verdict, and how many of its comparisons agree,
    disagree or are not significant; for a claim still pending, how many of its runs are archived
    (and its complete groups so far), or that its metric awaits its validation
``changes``
    each claim that restates another (the same question at another budget) against it: both
    verdicts and, per group, both comparisons and whether the outcome changed
    (:func:`noisemod.analysis.claims.changes_table`)
``table ARCHIVE [PART...]``
    the command that made ``results/ARCHIVE``, then its report's tables: per condition, seeds, test
    accuracy, robust accuracy, VII and train time (mean ± std [95% CI]), and the interpretability
    scores with their floor (a freshly initialized model); with PARTs (:data:`TABLE_PARTS`), only
    those, narrower: ``command``, ``accuracy`` (test accuracy, VII, train time), ``robustness`` (the
    robust accuracies), ``interpretability`` and ``score`` (the chosen score alignment and its floor,
    read from the runs' yardsticks.json), the method settings folded into one condition column
``cost ARCHIVE``
    per dataset and model of ``results/ARCHIVE``, each method against standard training: the VII
    gained and the accuracy points lost (differences of seed means with their 95% Welch
    intervals), the training time as a multiple of standard's, and the VII gained per accuracy
    point lost and per extra standard-training time (not given under 5% extra: timing noise)
``correlation ARCHIVE X Y``
    per dataset and model, Spearman's rank correlation of two results.csv columns over the runs
    that have both, with its 95% interval and p (:func:`noisemod.analysis.stats.spearman`); ``robust@large``
    and ``robust@small`` name the robust accuracy after training at the dataset's larger or smaller
    radius
``training ARCHIVE``
    per dataset and model of ``results/ARCHIVE``, VII of the fixed validation batch (metrics.csv's
    ``val_vii``) per method at epochs 1, 2, 5, 10, 20, ..., mean ± std over seeds, with nm minus
    standard (95% Welch interval, p = max of Welch's and the permutation test's) at each, and the
    epoch where that difference is largest
``randomization ARCHIVE``
    per dataset, model and method of ``results/ARCHIVE``, the cascading randomization test of the
    gradient (signed and absolute): the mean Spearman correlation between the explanations of the
    trained model and of the model with its top module re-initialized, and with every module
    re-initialized, mean ± std over seeds (near 0: the explanation depends on what was learned)
``versus ARCHIVE METHOD``
    per dataset and model of ``results/ARCHIVE`` (a table each), every method with its seeds, test accuracy (mean ±
    std), VII (mean ± std [95% CI]), VII floor (the mean over seeds of a freshly initialized model's,
    where the runs measured it) and training time as a multiple of standard's; then METHOD minus
    each other method on VII and on test accuracy (difference of seed means, 95% Welch interval, p
    Holm-corrected over the archive per metric, as the report's comparisons)
``archive``
    the archive itself: each sweep, its runs, its size, and the total size
``validation [all]``
    the metrics' validation (:mod:`noisemod.analysis.validation`): per group the yardsticks that
    pass, fail or wait, the claims' yardsticks and the chosen score alignment; ``all``: every yardstick
``answer ARCHIVE DATASET MODEL``
    the question, the answer computed from the verdicts of :data:`ANSWER_CLAIMS`, and the numbers
    that carry it on one group of ``results/ARCHIVE``
``time ARCHIVE``
    where a run's wall time goes, per condition of ``results/ARCHIVE``: training epochs, the checks
    after each epoch, setup, the final evaluation, and each measurement after training
    (:func:`noisemod.analysis.tables.time_steps`), in minutes and as shares of the total

``budgets [SPEC...]``
    each budget of the bundled specs (or of those named), from the runs it expands to: runs, seeds,
    epochs, training images per dataset (``all``: the training split less validation) and models

``noisemod docs FILE...`` rewrites the generated parts; ``--check`` changes nothing and exits 1
naming each part that is out of date (a test runs it on README.md, docs/ and docs/results/).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..rundir import RunDir, SweepDir
from . import CLAIMS
from .formatting import group_mean_std, markdown_table, mean_std, missing, number, p_value, signed
from .tables import column_value, unique

__all__ = ["DocError", "Sources", "check", "regenerate", "render"]

BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


class DocError(ValueError):
    """A generated part that cannot be made: an unknown kind, or an archive or claim that is not there."""


@dataclass(frozen=True)
class Sources:
    """Where generated parts come from: the archive folder and the claims file. One ``Sources``
    serves one regeneration: ``verified`` holds the archives verified so far (each once,
    :func:`noisemod.analysis.claims.verify`), ``memo`` the claims' verdicts and the metrics'
    validation, each computed once however many parts show them."""

    results: Path = Path("results")
    claims: Path = CLAIMS
    verified: set = field(default_factory=set, compare=False, repr=False)
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def _claims(sources: Sources):
    """The claims' verdicts, once per ``sources``, judged with the memoized validation; when that
    cannot be computed, :func:`~noisemod.analysis.claims.evaluate_claims` tries again and says why
    with the command that makes it."""
    from .claims import evaluate_claims
    from .validation import ValidationError

    if "claims" not in sources.memo:
        try:
            validation = _validated(sources)
        except ValidationError:
            validation = None
        sources.memo["claims"] = evaluate_claims(sources.claims, sources.results, validation)
    return sources.memo["claims"]


def _validated(sources: Sources):
    """The validation the claims file names (:func:`noisemod.analysis.validation.validate`), once per
    ``sources``; raises its ValidationError."""
    from .claims import load_rules
    from .validation import validate

    if "validation" not in sources.memo:
        rules = load_rules(sources.claims)
        sources.memo["validation"] = validate(sources.results / rules["validation"], rules["robust_accuracy"])
    return sources.memo["validation"]


def _verdicts(sources: Sources, args: Sequence[str]) -> str:
    from .claims import verdict_table

    return verdict_table(_claims(sources))


def _changes(sources: Sources, args: Sequence[str]) -> str:
    from .claims import changes_table

    return changes_table(_claims(sources))


def _bottom_line(sources: Sources, args: Sequence[str]) -> str:
    from .claims import tally

    results = _claims(sources)
    unknown = sorted(set(args) - {r.claim["id"] for r in results})
    if unknown:
        raise DocError(f"'bottom-line' names claims not in {sources.claims}: {', '.join(unknown)}")
    lines = []
    for r in (r for r in results if not args or r.claim["id"] in args):
        if r.runs:
            lines.append(
                f"- {r.claim['title']}: **{r.verdict}** ({r.runs[0]} of {r.runs[1]} runs archived, "
                f"complete groups so far: {len(r.comparisons)}; {_archives(r.claim)})"
            )
            continue
        if r.verdict == "pending":  # the runs are in; the metric's validation is not
            waiting = sum(c["untested"].startswith("not tested yet") for c in r.untested)
            lines.append(
                f"- {r.claim['title']}: **pending**: its metric awaits its validation on {waiting} of "
                f"{len(r.comparisons) + len(r.untested)} groups ({_archives(r.claim)})"
            )
            continue
        agree, disagree = tally([c["comparison"] for c in r.comparisons], r.claim["direction"])
        rest = len(r.comparisons) - agree - disagree
        untested = f", {len(r.untested)} not tested" if r.untested else ""
        lines.append(
            f"- {r.claim['title']}: **{r.verdict}** ({agree} of {len(r.comparisons)} comparisons agree, "
            f"{disagree} disagree, {rest} not significant{untested}; {_archives(r.claim)})"
        )
    return "\n".join(lines)


def _archives(claim: dict) -> str:
    from .claims import archive_names

    return ", ".join(f"`results/{name}`" for name in archive_names(claim))


#: the parts a ``table ARCHIVE PART...`` shows, in the order named (none named: command, results, interpretability)
TABLE_PARTS = ("command", "accuracy", "robustness", "interpretability", "score")


def _table(sources: Sources, args: Sequence[str]) -> str:
    from .report import report_sections

    folder = _archived(sources, args[:1], "table")
    parts = list(args[1:])
    unknown = [p for p in parts if p not in TABLE_PARTS]
    if unknown:
        raise DocError(f"'table' parts are {', '.join(TABLE_PARTS)}; got {', '.join(unknown)}")
    s = report_sections(folder)
    command = SweepDir(folder).read_sweep().get("command")  # as the sweep was run (not the archive's path)
    out = []
    for part in parts or ["command", "results", "interpretability"]:
        if part == "command" and command:
            out.append(f"`{command}`")
        elif part == "results":
            out.append(f"{TABLE_CAPTIONS['accuracy']}\n\n" + markdown_table(*s["results"]))
        elif part in ("accuracy", "robustness"):
            header, rows = _results_columns(s, part)
            text = markdown_table(header, rows) if rows else f"(no run of `results/{folder.name}` has one)"
            out.append(f"{TABLE_CAPTIONS[part]}\n\n{text}")
        elif part == "interpretability" and s["interpretability"][1]:
            n = sorted({str(r.get("n")) for r in _interpretability_entries(folder)})
            caption = TABLE_CAPTIONS[part].format(n=", ".join(n))
            out.append(f"{caption}\n\n" + markdown_table(*s["interpretability"]))
        elif part == "score":
            out.append(_score_table(sources, folder))
    return "\n\n".join(out)


def _score_table(sources: Sources, folder: Path) -> str:
    """Per condition of the archive, the chosen score alignment (the yardstick the validation's
    declared rule picks) and its floor, from each run's yardsticks.json: mean ± std [95% CI] over the
    runs that measured it; conditions without it left out."""
    from .tables import aggregate, condition_label, load_results, with_yardsticks
    from .validation import ValidationError, choose_score_yardstick

    try:
        validation = _validated(sources)
    except ValidationError as e:
        raise DocError(f"'table score': {e}") from None
    if validation.pending:
        return "(not yet: the score alignment is chosen once the metrics' validation is complete)"
    chosen = choose_score_yardstick(validation)
    if chosen is None:
        return "(none: no score yardstick passes its validation)"
    rows = [
        {**r, "condition": condition_label(r), "score": r[chosen], "floor": r[f"{chosen}_floor"]}
        for r in with_yardsticks(folder, load_results(folder), [chosen, f"{chosen}_floor"], images="n_images")
        if r[chosen] is not None
    ]
    if not rows:
        return f"(no run of `results/{folder.name}` has measured the chosen score alignment `{chosen}` yet)"
    body = []
    for g in aggregate(rows, ("dataset", "model", "condition"), ("score", "floor")):
        floor = "" if missing(g["floor_mean"]) else f" [floor {number(g['floor_mean'], 4)}]"
        body.append([g["dataset"], g["model"], g["condition"], str(g["n"]), group_mean_std(g, "score", note=floor)])
    images = ", ".join(sorted({str(r["n_images"]) for r in rows}))
    caption = (
        f"The chosen score alignment, `{chosen}`, on the first {images} test images (each run's "
        "yardsticks.json; mean ± std [95% CI] over seeds; [floor: the same architecture freshly "
        "initialized]; ↑ higher is better; conditions that do not measure it left out):"
    )
    return f"{caption}\n\n" + markdown_table(["dataset", "model", "condition", "runs", "score alignment ↑"], body)


TABLE_CAPTIONS = {
    "accuracy": "Results (VII on the full test set; mean ± std [95% CI] over seeds):",
    "robustness": "Robust accuracy (PGD-50: `robust_accuracy` at the training radius as each adversarial run ends, "
    "`robust_accuracy_eps<eps>` after training; mean ± std [95% CI] over seeds; conditions without one left out):",
    "interpretability": "Interpretability on the first {n} test images (mean ± std [95% CI] over seeds; [floor: "
    "the same architecture freshly initialized]; ↑ higher is better):",
}


def _results_columns(sections: dict, part: str) -> tuple[list[str], list[list[str]]]:
    """The report's results table with one part's columns (accuracy: test accuracy, VII and training
    time; robustness: the robust accuracies), its method settings folded into one ``condition``
    column (:func:`condition_label`), and without the rows that have none of those columns."""
    from ..config import get_setting
    from .tables import ROBUST_PREFIX, condition_label

    header, rows = sections["results"]
    groups = sections["statistics"]["conditions"]  # one per row, in the table's order
    runs = header.index("runs")
    kept = [k for k in header[:runs] if k != "method" and not get_setting(k).method]
    if part == "robustness":
        columns = [i for i in range(runs + 1, len(header)) if header[i].startswith("robust_accuracy")]
    else:
        columns = [i for i in range(runs + 1, len(header)) if not header[i].startswith(ROBUST_PREFIX)]
        columns = [i for i in columns if header[i] != "robust_accuracy"]
    body = []
    for group, row in zip(groups, rows):
        cells = [row[i] for i in columns]
        if all(c == "-" for c in cells):
            continue
        body.append([*(row[header.index(k)] for k in kept), condition_label(group), row[runs], *cells])
    return [*kept, "condition", "runs", *(header[i] for i in columns)], body


def _interpretability_entries(folder: Path) -> list[dict]:
    sweep = SweepDir(folder)
    out = []
    for run in sorted(sweep.runs_dir.iterdir()) if sweep.runs_dir.is_dir() else ():
        entries = sweep.run(run.name).read_interpretability().values()
        out += [e for e in entries if "scores" in e]  # not the randomization tests (their own part)
    return out


def _cost(sources: Sources, args: Sequence[str]) -> str:
    from .claims import comparisons
    from .tables import aggregate, condition_label, load_results

    rows = load_results(_archived(sources, args, "cost"))
    compared = {(c["dataset"], c["model"], c["condition"], c["metric"]): c for c in comparisons(rows, CONDITION)}
    times = {
        (g["dataset"], g["model"], g["label"]): g["train_seconds_mean"]
        for g in aggregate(
            [dict(r, label=condition_label(r)) for r in rows], ("dataset", "model", "label"), ["train_seconds"]
        )
    }
    header = ["dataset, model", "method", "seeds", "VII gained [95% CI]", "accuracy points lost [95% CI]"]
    header += ["time / standard", "VII per point lost", "VII per extra standard time"]
    body = []
    for (dataset, model, label, metric), vii in compared.items():
        acc = compared.get((dataset, model, label, "test_accuracy"))
        standard = next((v for k, v in times.items() if k[:2] == (dataset, model) and k[2] == "standard"), None)
        if metric != "vii" or acc is None or not standard:
            continue
        gain, lost = vii["comparison"], acc["comparison"]
        ratio = times[(dataset, model, label)] / standard
        body.append(
            [f"{dataset}, {model}", label, str(vii["a"]["n"]), signed(gain["diff"], gain["ci_low"], gain["ci_high"])]
            + [signed(-100 * lost["diff"], _neg(lost["ci_high"]), _neg(lost["ci_low"])), f"{ratio:.2f}"]
            + [_per(gain["diff"], -100 * lost["diff"]), _per(gain["diff"], ratio - 1, at_least=TIME_NOISE)]
        )
    return markdown_table(header, body)


CONDITION = ("dataset", "model", "method")


def _time(sources: Sources, args: Sequence[str]) -> str:
    """``time ARCHIVE``: where a run's wall time goes, per condition (the mean over its runs that
    recorded their timings, :func:`noisemod.analysis.tables.time_steps`): minutes per step, each
    step's share of the total, and the total; then, while the sweep has runs to train, how many and
    how long they take by these timings (:func:`noisemod.analysis.tables.time_left`)."""
    import statistics

    from .tables import TIME_STEPS, condition_label, load_results, time_left, time_steps

    folder = _archived(sources, args, "time")
    groups: dict[tuple, list[dict]] = {}
    timed = [(r, time_steps(folder, r)) for r in load_results(folder)]
    for r, steps in timed:
        if steps is not None:
            groups.setdefault((r["dataset"], r["model"], condition_label(r)), []).append(steps)
    if not groups:
        return f"No run of `results/{args[0]}` recorded its timings yet (timings.json, written by the sweep)."
    header = ["dataset, model", "method", "runs", *TIME_STEPS, "total (min)"]
    body = []
    for (dataset, model, label), runs in groups.items():
        mean = {k: statistics.fmean(r[k] for r in runs) for k in (*TIME_STEPS, "total")}
        cells = [f"{mean[k] / 60:.1f} ({mean[k] / mean['total']:.0%})" for k in TIME_STEPS]
        body.append([f"{dataset}, {model}", label, str(len(runs)), *cells, f"{mean['total'] / 60:.1f}"])
    text = "Minutes per run (share of the run's total), mean over its runs:\n\n" + markdown_table(header, body)
    left = time_left(folder, timed)
    return text + _time_left(left, _claims_left(sources, args[0], left))


def _hours(hours: float, jobs: int) -> str:
    """``hours`` of one core, and at the sweep's ``jobs`` runs at a time."""
    at_once = f", {hours / jobs:.1f} hours at the {jobs} runs at a time of the sweep's command" if jobs > 1 else ""
    return f"about {hours:.1f} hours of one core{at_once}"


def _claims_left(sources: Sources, name: str, left: dict) -> str:
    """The sentence on the runs left that the claims reading archive ``name`` compare: how many
    claims wait, for how many runs, how long by the archive's timings, and the ``--limit`` of the
    sweep that reaches them first (by the order of the archive's copy of its spec; left out when
    they are the last runs anyway); empty when no such run is left."""
    from .claims import archive_names, load_claims, planned_runs

    archive, left_ids = SweepDir(sources.results / name), set(left["left"])
    waiting = {}  # claim id -> the runs left that it reads
    for c in load_claims(sources.claims):
        if name in archive_names(c):
            runs = {run_id for run_id, _ in planned_runs(c, archive)} & left_ids
            if runs:
                waiting[c["id"]] = runs
    read = set().union(*waiting.values())
    needed = [r for r in left["left"] if r in read]
    if not needed:
        return ""
    timed = [r for r in needed if r in left["seconds"]]
    verb = "claim on this archive waits" if len(waiting) == 1 else "claims on this archive wait"
    text = f" {len(waiting)} {verb} for {len(needed)} of them"
    if timed:
        hours = sum(left["seconds"][r] for r in timed) / 3600
        text += f" ({len(timed)} timed: {_hours(hours, left['jobs'])})"
    limit = max(left["order"].index(r) for r in needed) + 1
    if limit < left["planned"]:
        others = sum(r not in read for r in left["left"] if left["order"].index(r) < limit)
        text += f"; `--limit {limit}` works on them first" + (f" (and on {others} more)" if others else "")
    return text + "."


def _time_left(left: dict, claims: str = "") -> str:
    """The sentence on the runs a sweep has still to train (empty when none), then ``claims`` (the
    sentence on those the claims wait for)."""
    if not left["left"]:
        return ""
    text = f"\n\nStill to train: {len(left['left'])} of the {left['planned']} runs planned."
    if left["timed"]:
        text += (
            f" By the timings above, {len(left['timed'])} of them (each at the mean total of its dataset, model"
            f" and method, else of its dataset and model) take {_hours(left['hours'], left['jobs'])}."
        )
    if left["untimed"]:
        groups = ", ".join(f"{d}/{m}" for d, m in sorted(set(left["untimed"])))
        text += f" Without a timed run of their dataset and model yet: {len(left['untimed'])} ({groups})."
    text += claims
    rows = [
        [f"{d}, {m}", label, f"{done} of {planned}"] for (d, m, label), (done, planned) in left["conditions"].items()
    ]
    return (
        text
        + "\n\nRuns done per condition (archived with all the spec asks of them):\n\n"
        + markdown_table(["dataset, model", "method", "done"], rows)
    )


def _versus(sources: Sources, args: Sequence[str]) -> str:
    import statistics

    from ..methods import METHODS
    from .claims import comparisons
    from .stats import summarize
    from .tables import condition_label, load_results

    if len(args) != 2:
        raise DocError(f"'versus' takes an archive and a method, got {' '.join(args) or 'none'}")
    rows = load_results(_archived(sources, args[:1], "versus"))
    reference = args[1]
    if reference not in METHODS:
        raise DocError(f"'versus': unknown method {reference!r}; methods: {', '.join(METHODS)}")
    metrics = ("vii", "test_accuracy")
    # reference - method: the comparisons give method - reference
    compared = {
        (c["dataset"], c["model"], c["condition"], c["metric"]): c["comparison"]
        for c in comparisons(rows, CONDITION, metrics, reference=reference)
    }
    # no run of the reference yet (an archive being filled): the table without the differences
    ref_label = next((condition_label(r) for r in rows if r["method"] == reference), reference)
    header = ["method", "seeds", "test accuracy", "VII [95% CI]", "VII floor", "time / standard"]
    header += [f"{ref_label} - method: VII [95% CI]", "p Holm", "test accuracy [95% CI]", "p Holm"]
    parts = []
    for pair in dict.fromkeys((r["dataset"], r["model"]) for r in rows):
        here = [dict(r, label=condition_label(r)) for r in rows if (r["dataset"], r["model"]) == pair]
        labels = list(dict.fromkeys(r["label"] for r in here))
        seconds = {
            lb: [v for r in here if r["label"] == lb and (v := column_value(r, "train_seconds"))] for lb in labels
        }
        standard = statistics.fmean(seconds["standard"]) if seconds.get("standard") else None
        body = []
        for lb in labels:
            runs = [r for r in here if r["label"] == lb]
            vii, acc = (summarize([v for r in runs if (v := column_value(r, m)) is not None]) for m in metrics)
            floors = [v for r in runs if (v := column_value(r, "gradient_vii_floor")) is not None]
            ci = (vii.ci_low, vii.ci_high) if vii.ci_low is not None else None
            row = [lb, str(len(runs)), mean_std(acc.mean, acc.std)]
            row += [mean_std(vii.mean, vii.std, ci=ci), number(statistics.fmean(floors)) if floors else "-"]
            row += [f"{statistics.fmean(seconds[lb]) / standard:.2f}" if standard and seconds[lb] else "-"]
            if lb == ref_label:
                row += ["(reference)", "", "", ""]
            else:
                for m in metrics:
                    c = compared.get((*pair, lb, m))
                    if c is None:
                        row += ["-", "-"]
                        continue
                    row += [signed(-c["diff"], _neg(c["ci_high"], 1), _neg(c["ci_low"], 1)), p_value(c["p_holm"])]
            body.append(row)
        parts.append(f"{pair[0]}, {pair[1]}:\n\n" + markdown_table(header, body))
    return "\n\n".join(parts)


def _correlation(sources: Sources, args: Sequence[str]) -> str:
    from .stats import spearman
    from .tables import load_results

    if len(args) != 3:
        raise DocError(f"'correlation' takes an archive and two columns, got {' '.join(args) or 'none'}")
    rows = load_results(_archived(sources, args[:1], "correlation"))
    header = ["dataset, model", "runs", "methods", f"Spearman {args[1]} vs {args[2]} [95% CI]", "p"]
    body, seen = [], 0
    for pair in dict.fromkeys((r["dataset"], r["model"]) for r in rows):
        both = [
            (r, column_value(r, args[1]), column_value(r, args[2])) for r in rows if (r["dataset"], r["model"]) == pair
        ]
        both = [(r, x, y) for r, x, y in both if x is not None and y is not None]
        seen += len(both)
        if len(both) < 3:
            continue
        c = spearman([x for _, x, _ in both], [y for _, _, y in both])
        methods = ", ".join(dict.fromkeys(str(r["method"]) for r, _, _ in both))
        rho = signed(c.rho, c.ci_low, c.ci_high, digits=2)
        body.append([", ".join(map(str, pair)), str(c.n), methods, rho, p_value(c.p)])
    if not seen:
        raise DocError(f"no runs in results/{args[0]} have both {args[1]} and {args[2]}")
    if not body:  # an archive being filled
        return f"(not yet: {seen} run(s) with both {args[1]} and {args[2]}, fewer than 3 of one dataset and model)"
    return markdown_table(header, body)


def _randomization(sources: Sources, args: Sequence[str]) -> str:
    from .tables import condition_label, load_results

    folder = _archived(sources, args, "randomization")
    sweep = SweepDir(folder)
    cells: dict[tuple, dict[str, list[float]]] = {}
    for row in load_results(folder):
        tests = sweep.run(row["run_id"]).read_interpretability()
        key = (f"{row['dataset']}, {row['model']}", condition_label(row))
        for absolute in (False, True):
            layers = tests.get(RunDir.cascading_key("gradient", absolute), {}).get("layers")
            if layers:
                kind = "absolute" if absolute else "signed"
                cells.setdefault(key, {}).setdefault(f"{kind}: top", []).append(layers[0][1])
                cells[key].setdefault(f"{kind}: all", []).append(layers[-1][1])
    if not cells:
        raise DocError(f"no run of {folder} has a cascading randomization test of the gradient")
    columns = ["signed: top", "signed: all", "absolute: top", "absolute: all"]
    named = {"top": "top module", "all": "all modules"}
    header = ["dataset, model", "method", "seeds"]
    header += [f"{c.split(': ')[0]}, {named[c.split(': ')[1]]} re-initialized" for c in columns]
    body = [
        [
            *key,
            str(max(len(v) for v in c.values())),
            *(_seed_mean_std(c.get(col, []), len(c.get(col, []))) for col in columns),
        ]
        for key, c in cells.items()
    ]
    return markdown_table(header, body)


#: the epochs a ``training`` table shows (those the runs reached), besides the epoch of nm's largest lead
TRAINING_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 50, 75, 100)


def _training(sources: Sources, args: Sequence[str]) -> str:
    from .tables import load_results, training_rows

    folder = _archived(sources, args, "training")
    points = training_rows(folder, load_results(folder), ("val_vii",))
    if not points:
        raise DocError(f"no run of {folder} has val_vii in its {RunDir.METRICS} (runs before VII along training)")
    parts = []
    for pair in dict.fromkeys((p["dataset"], p["model"]) for p in points):
        here = [p for p in points if (p["dataset"], p["model"]) == pair]
        parts.append(f"{pair[0]}, {pair[1]}:\n\n" + _training_table(here))
    return "\n\n".join(parts)


def _training_table(points: Sequence[dict]) -> str:
    """One dataset and model: VII per epoch and condition, nm minus standard, and where it peaks."""
    from .stats import compare

    values: dict[tuple, list[float]] = {}
    for p in points:
        values.setdefault((p["label"], p["epoch"]), []).append(p["val_vii"])
    labels = list(dict.fromkeys(p["label"] for p in points))
    epochs = sorted({p["epoch"] for p in points})
    nm = next((lb for lb in labels if lb.split()[0] == "nm"), None)
    diffs = {}
    for e in epochs if nm and "standard" in labels else ():
        a, b = values.get((nm, e), []), values.get(("standard", e), [])
        if len(a) > 1 and len(b) > 1:
            diffs[e] = compare(a, b)
    peak = max(diffs, key=lambda e: diffs[e].diff) if diffs else None
    shown = sorted({e for e in epochs if e in TRAINING_EPOCHS or e == epochs[-1]} | ({peak} if peak else set()))
    header = ["epoch", *labels] + ([f"{nm} - standard [95% CI]", "p"] if diffs else [])
    body = []
    for e in shown:
        row = [f"{e}" + (" (nm's largest lead)" if e == peak else "")]
        row += [
            _seed_mean_std(values.get((lb, e), []), len({p["seed"] for p in points if p["label"] == lb}))
            for lb in labels
        ]
        if diffs:
            c = diffs.get(e)
            row += [signed(c.diff, c.ci_low, c.ci_high), p_value(c.p)] if c else ["", ""]
        body.append(row)
    return markdown_table(header, body)


def _seed_mean_std(values: Sequence[float], seeds: int) -> str:
    """``mean ± std`` of the values (3 decimals), with their number when fewer than the condition's
    ``seeds`` (runs stopped early)."""
    import statistics

    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    note = f" (n={len(values)})" if len(values) < seeds else ""
    return mean_std(statistics.fmean(values), std, digits=3, note=note)


def _neg(v, scale: float = 100):
    return None if v is None else -scale * v


#: extra training time (a fraction of standard's) below which it is not told apart from timing noise
TIME_NOISE = 0.05


def _per(gain: float, cost: float, at_least: float = 0.0) -> str:
    """Gain per unit of cost; '-' where the cost is not positive (nothing was paid) or under ``at_least``
    (a cost not told apart from noise: dividing by it would blow the ratio up)."""
    if cost <= 0:
        return "- (no cost)"
    return f"{gain / cost:+.4f}" if cost >= at_least else f"- (under {at_least:.0%})"


def _validation(sources: Sources, args: Sequence[str]) -> str:
    """``validation``: the summary (per group: yardsticks that pass, fail, wait; adversarial runs left
    out as not robust; the status of the claims' yardsticks and the chosen score alignment);
    ``validation all``: every yardstick's row."""
    from .claims import CHOSEN_SCORE, load_claims, yardstick_of
    from .validation import ValidationError, choose_score_yardstick, validation_summary, validation_table

    if args not in ([], ["all"]):
        raise DocError(f"'validation' takes nothing or 'all', got {' '.join(args)}")
    try:
        validation = _validated(sources)
    except ValidationError as e:
        raise DocError(f"'validation': {e}") from None
    if args == ["all"]:
        return validation_table(validation)
    metrics = dict.fromkeys(m for c in load_claims(sources.claims) for m in (c["metric"], *c.get("also", [])))
    used = dict.fromkeys(y for m in metrics if (y := yardstick_of(m)) and y != CHOSEN_SCORE)
    chosen = choose_score_yardstick(validation)
    text = validation_summary(validation, [*used, *([chosen] if chosen and chosen not in used else [])])
    choice = f"`{chosen}`" if chosen else "none yet (no score yardstick passes on any group)"
    return text + f"\n\nThe score alignment chosen by the declared rule: {choice}."


#: The claims whose verdicts answer the question, in the answer's order.
ANSWER_CLAIMS = ("protocol-nm-vii", "protocol-nm-like-fgsm", "protocol-additive", "cost-time")


def _answer(sources: Sources, args: Sequence[str]) -> str:
    """``answer ARCHIVE DATASET MODEL``: the question, the answer computed from the verdicts of
    :data:`ANSWER_CLAIMS` (not answered yet: one pending; not answered: the VII claims not tested,
    their metric failing its validation; yes: all reproduced; no: noise modulation's VII is not
    shown above standard training, or shown below FGSM-RS's; partly otherwise),
    and the numbers that carry it on one group of the archive, each with its 95% interval."""
    if len(args) != 3:
        raise DocError(f"'answer' takes an archive, a dataset and a model, got {' '.join(args) or 'none'}")
    results = {r.claim["id"]: r for r in _claims(sources)}
    missing = [c for c in ANSWER_CLAIMS if c not in results]
    if missing:
        raise DocError(f"'answer' needs the claims {', '.join(missing)} in {sources.claims}")
    verdicts = {c: results[c].verdict for c in ANSWER_CLAIMS}
    if "pending" in verdicts.values():
        word = "Not answered yet"
    elif "not tested" in (verdicts["protocol-nm-vii"], verdicts["protocol-nm-like-fgsm"]):
        word = "Not answered: the interpretability claims' metric did not pass its validation"
    elif all(v == "reproduced" for v in verdicts.values()):
        word = "Yes"
    elif verdicts["protocol-nm-vii"] in ("contradicted", "inconclusive") or (
        verdicts["protocol-nm-like-fgsm"] == "contradicted"
    ):
        word = "No"
    else:
        word = "Partly"
    said = ", ".join(f"`{c}` {v}" for c, v in verdicts.items())
    lines = [
        "**Does noise modulation buy interpretable input-gradients more cheaply than the alternatives?**",
        f"**{word}** (verdicts: {said}).",
        *_answer_scope(sources, results["protocol-nm-vii"].claim["metric"]),
        "",
        *_answer_numbers(sources, *args),
    ]
    return "\n".join(lines)


def _answer_scope(sources: Sources, metric: str) -> list[str]:
    """Where the answer's interpretability metric may judge: the datasets where its yardstick passed
    its validation, and those where it did not (their groups are not tested)."""
    from .claims import yardstick_of
    from .validation import ValidationError

    stick = yardstick_of(metric)
    if stick is None:
        return []
    try:
        validation = _validated(sources)
    except ValidationError:
        return []
    status = {d: validation.status(stick, d)[0] for d in validation.datasets()}
    passed = [d for d, s in status.items() if s == "pass"]
    other = [f"{d} ({s})" for d, s in status.items() if s != "pass"]
    return [
        f"Judged on {metric} (`{stick}`) where it passed its validation: {', '.join(passed) or 'nowhere'}; "
        f"not tested on {', '.join(other) or 'no other dataset'}."
    ]


def _answer_numbers(sources: Sources, archive: str, dataset: str, model: str) -> list[str]:
    from .stats import compare, ratio, summarize
    from .tables import load_results

    rows = [
        r
        for r in load_results(_archived(sources, [archive], "answer"))
        if (r["dataset"], r["model"]) == (dataset, model)
    ]

    def values(method: str, column: str) -> list[float]:
        return [v for r in rows if r["method"] == method and (v := column_value(r, column)) is not None]

    def diff(a: str, b: str, column: str) -> str:
        x, y = values(a, column), values(b, column)
        if len(x) < 2 or len(y) < 2:
            return "-"
        c = compare(x, y)
        return f"{signed(c.diff, c.ci_low, c.ci_high)} (p {p_value(c.p)})"

    def times(a: str, b: str) -> str:
        x, y = values(a, "train_seconds"), values(b, "train_seconds")
        if not x or not y:
            return "-"
        r = ratio(x, y)
        return f"{r.ratio:.2f}x" + (f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.ci_low is not None else "")

    def robust(method: str) -> str:
        x = values(method, "robust@small")
        if not x:
            return "-"
        s = summarize(x)
        return mean_std(s.mean, digits=3, ci=(s.ci_low, s.ci_high) if s.ci_low is not None else None)

    seeds = sorted({r.get("seed") for r in rows if r.get("seed") is not None})
    where = (
        f"{model} on {dataset}, `results/{archive}`, {len(seeds)} seeds; difference [95% CI] (p, uncorrected), "
        "ratio or mean [95% CI]"
    )
    return [
        f"On {where}:",
        f"- VII gained by noise modulation over standard training: {diff('nm', 'standard', 'vii')}; "
        f"over additive noise: {diff('nm', 'additive-noise', 'vii')}; over FGSM-RS: {diff('nm', 'fgsm', 'vii')}",
        f"- alignment gained over standard training: {diff('nm', 'standard', 'gradient_alignment')}; "
        f"over additive noise: {diff('nm', 'additive-noise', 'gradient_alignment')}",
        f"- test accuracy lost against standard training: {diff('nm', 'standard', 'test_accuracy')}",
        f"- training time: {times('nm', 'standard')} standard's, {times('nm', 'fgsm')} FGSM-RS's",
        f"- robust accuracy at the small radius (PGD-50): nm {robust('nm')}, standard {robust('standard')}, "
        f"FGSM-RS {robust('fgsm')}",
    ]


def _archived(sources: Sources, args: Sequence[str], kind: str) -> Path:
    if len(args) != 1:
        raise DocError(f"'{kind}' takes one archive name, got {' '.join(args) or 'none'}")
    from .claims import ClaimError, verify

    folder = sources.results / args[0]
    if not SweepDir(folder).file(SweepDir.RESULTS).is_file():
        raise DocError(f"no archived sweep {folder} ({SweepDir.RESULTS} missing)")
    if folder not in sources.verified:
        try:
            verify(folder)
        except ClaimError as e:
            raise DocError(str(e)) from None
        sources.verified.add(folder)
    return folder


def _archive(sources: Sources, args: Sequence[str]) -> str:
    rows, total = [], 0
    for folder in sorted(p for p in sources.results.iterdir() if SweepDir(p).file(SweepDir.RESULTS).is_file()):
        size = sum(f.stat().st_size for f in _archived_files(folder))
        total += size
        runs = sum(1 for p in (folder / "runs").iterdir() if p.is_dir()) if (folder / "runs").is_dir() else 0
        rows.append([f"`results/{folder.name}`", str(runs), f"{size / 1e6:.2f} MB"])
    rows.append(["all", str(sum(int(r[1]) for r in rows)), f"{total / 1e6:.2f} MB"])
    return markdown_table(["archive", "runs", "size"], rows)


def _archived_files(folder: Path) -> list[Path]:
    """The files an archive keeps (its spec, sweep.json, results.csv and runs), not a report made from it."""
    from ..experiments.archive import SPEC

    sweep = SweepDir(folder)
    top = [folder / name for name in (SPEC, sweep.SWEEP, sweep.RESULTS)]
    runs = sweep.runs_dir.rglob("*") if sweep.runs_dir.is_dir() else ()
    return [f for f in [*top, *runs] if f.is_file()]


def _budgets(sources: Sources, args: Sequence[str]) -> str:
    """``budgets [SPEC...]``: each budget of the bundled specs (or of those named), from the runs it
    expands to: how many, their seeds, epochs, training images per dataset and models."""
    from ..experiments.catalog import bundled_specs
    from ..experiments.spec import expand, load_spec

    specs = bundled_specs()
    unknown = [a for a in args if a not in specs]
    if unknown:
        raise DocError(f"'budgets': no bundled spec {', '.join(unknown)}; bundled: {', '.join(specs)}")

    def values(configs, key) -> list:
        return sorted({getattr(c, key) for c in configs}, key=lambda v: (v is None, v))  # None (all) last

    rows = []
    for name in args or specs:
        spec = load_spec(specs[name])
        for budget in spec.budgets:
            configs = [r.config for r in expand(spec, budget)]
            images = []
            for dataset in unique(c.dataset for c in configs):
                sizes = values([c for c in configs if c.dataset == dataset], "train_size")
                images.append(f"{dataset} " + "/".join("all" if n is None else f"{n:,}" for n in sizes))
            seeds = values(configs, "seed")
            contiguous = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
            cells = [
                f"`{name}`",
                f"`{budget}`",
                str(len(configs)),
                f"{seeds[0]}-{seeds[-1]}" if contiguous else ", ".join(map(str, seeds)),
                ", ".join(map(str, values(configs, "epochs"))),
                "; ".join(images),
                ", ".join(values(configs, "model")),
            ]
            rows.append(cells)
    return markdown_table(["spec", "budget", "runs", "seeds", "epochs", "training images", "models"], rows)


KINDS: dict[str, Callable[[Sources, Sequence[str]], str]] = {
    "verdicts": _verdicts,
    "bottom-line": _bottom_line,
    "changes": _changes,
    "table": _table,
    "cost": _cost,
    "correlation": _correlation,
    "training": _training,
    "randomization": _randomization,
    "versus": _versus,
    "archive": _archive,
    "validation": _validation,
    "answer": _answer,
    "time": _time,
    "budgets": _budgets,
}


def render(spec: str, sources: Sources) -> str:
    """The text of one generated part, from its spec (``table cost-cpu-seeds``)."""
    kind, *args = spec.split()
    if kind not in KINDS:
        raise DocError(f"unknown generated part {kind!r}; kinds: {', '.join(KINDS)}")
    return KINDS[kind](sources, args).rstrip("\n") + "\n"


def regenerate(text: str, sources: Sources) -> tuple[str, list[str]]:
    """The text with every generated part rewritten, and the specs of the parts that changed."""
    changed = []

    def fill(m: re.Match) -> str:
        body = render(m["spec"], sources)
        if body != m["body"]:
            changed.append(m["spec"])
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(fill, text), changed


def check(paths: Sequence[Path], sources: Sources, *, write: bool) -> dict[Path, list[str]]:
    """Per file, the generated parts out of date; with ``write``, the files rewritten (atomically)."""
    from ..io import atomic_write

    stale = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise DocError(f"no such file: {path}")
        new, changed = regenerate(path.read_text(encoding="utf-8"), sources)
        if changed:
            stale[path] = changed
            if write:
                atomic_write(path, lambda f, new=new: f.write(new), "w")
    return stale

"""The metrics' validation: a yardstick judges only after it orders known controls as expected.

A yardstick (:class:`noisemod.metrics.Yardstick`: an explainer, a metric and, for a score
alignment, its pairing, sigma, point and pixels) is measured on every run of the validation
archive (``results/validation``, the bundled sweep ``validation``): per dataset and model
(a *validation group*), standard training, models known to have perceptually aligned gradients
(the *positive controls*: adversarial training, Gaussian noise augmentation, input-gradient
regularization) and models known to lack them (the *negative controls*: standard training on
shuffled labels, and each standard run's freshly initialized model, its floor).

The rule, written before any validation run had finished (docs/metrics.md says it too):

- An adversarial run counts as a positive control only if it is robust: its robust accuracy at
  its own radius and norm (result.json, PGD-50) is at least the dataset's threshold
  (``robust_accuracy`` in the claims file). A positive control needs :data:`MIN_SEEDS` counted runs.
- Expected order: every positive control above standard training, standard training above the
  floor and above shuffled labels (below, for a metric where lower is better).
- Checks, each comparison by :func:`~noisemod.analysis.stats.compare` (difference of seed means,
  p the larger of Welch's and the exact permutation test's, one-sided in the expected direction:
  two-sided p-values could never pass the positive check, since 5 seeds a side give an exact
  permutation p of at least 0.0079, and Holm over 9 positive controls multiplies it by 9):
  ``positive``: at least half of the positive controls are significantly better than standard
  (Holm over the group's positive controls, alpha 0.05) and none is significantly worse;
  ``floor``: standard significantly better than the floor; ``shuffled``: standard significantly
  better than shuffled labels.
- A yardstick **passes** a group when all three checks pass, **fails** when one fails, and is
  **pending** while the archive lacks some run the sweep plans for the group. It may judge a claim
  on a dataset only where it passed (:meth:`Validation.status`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .stats import Comparison, Summary, compare, holm, summarize

__all__ = [
    "MIN_SEEDS",
    "GroupCheck",
    "ThresholdError",
    "Validation",
    "ValidationError",
    "choose_score_yardstick",
    "validate",
    "validation_summary",
    "validation_table",
]

ALPHA = 0.05
#: runs a control needs to be compared (a positive control with fewer robust runs is left out)
MIN_SEEDS = 3
CHECKS = ("positive", "floor", "shuffled")


class ValidationError(ValueError):
    """A validation that cannot be computed: no archive, or an archive without yardsticks."""


class ThresholdError(ValidationError):
    """An adversarial control on a dataset the claims file gives no robust accuracy threshold."""


@dataclass
class Control:
    """One control of a validation group: its label, role (``standard``, ``positive``, ``shuffled``,
    ``floor``), the runs counted and those left out (with why), and its robust accuracy at its own
    radius where it has one."""

    label: str
    role: str
    runs: list = field(default_factory=list)
    adversarial: bool = False  # (run_id, yardstick values, robust accuracy or None)
    left_out: list[str] = field(default_factory=list)


@dataclass
class GroupCheck:
    """One yardstick on one validation group: ``status`` (pass, fail, pending), each check's outcome
    (True, False, None when it could not be made) with a line saying why, and the comparisons."""

    dataset: str
    model: str
    yardstick: str
    status: str
    checks: dict[str, bool | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, Summary] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [c for c in CHECKS if self.checks.get(c) is False]


@dataclass
class Validation:
    """Every yardstick checked on every validation group of an archive."""

    archive: Path
    groups: dict[tuple[str, str], dict[str, Control]]
    results: dict[tuple[str, str, str], GroupCheck]  # (yardstick, dataset, model) -> check
    pending: dict[tuple[str, str], tuple[int, int]]  # group -> (archived, planned), for incomplete groups

    def yardsticks(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.results))

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(d for d, _ in self.groups))

    def status(self, yardstick: str, dataset: str) -> tuple[str, str]:
        """``(status, why)`` of ``yardstick`` on ``dataset``: ``pass``, ``fail`` (why: the failed
        checks), ``pending`` (runs missing) or ``none`` (no validation group for the dataset, or the
        yardstick was never measured)."""
        waiting = [f"{d}/{m}: {n} of {k} runs archived" for (d, m), (n, k) in self.pending.items() if d == dataset]
        if waiting and yardstick in self.yardsticks():
            return "pending", "; ".join(waiting)
        found = [r for (y, d, _), r in self.results.items() if y == yardstick and d == dataset]
        if not found:
            where = "the yardstick was never measured" if yardstick not in self.yardsticks() else "no validation group"
            return "none", f"{where} on {dataset}"
        if any(r.status == "pending" for r in found):
            return "pending", "; ".join(r.reasons.get("pending", "") for r in found if r.status == "pending")
        failed = [r for r in found if r.status == "fail"]
        if failed:
            return "fail", "; ".join(f"{r.model}: failed {', '.join(r.failed)}" for r in failed)
        return "pass", ""


def validate(archive, thresholds: Mapping[str, float], yardsticks: Iterable[str] | None = None) -> Validation:
    """Check every yardstick measured in ``archive`` (or those named) on each of its validation
    groups by the rule above; ``thresholds``: dataset -> the robust accuracy an adversarial run needs.

    Raises:
        ValidationError: the archive is missing or holds no yardstick values.
    """
    archive = Path(archive)
    runs = _read_runs(archive)
    if not runs:
        raise ValidationError(
            f"{archive}: no archived run with yardsticks; validate the metrics first: "
            "noisemod sweep validation --budget cpu --out sweeps/validation "
            "--data-root DATA --archive results/validation"
        )
    groups = _controls(runs, thresholds)
    pending = _pending(archive, runs)
    names = list(yardsticks) if yardsticks is not None else list(dict.fromkeys(k for r in runs for k in r["values"]))
    names = [n for n in names if not n.endswith("_floor")]
    for key in pending:  # planned groups with no run archived yet
        groups.setdefault(key, {})
    results = {}
    for (dataset, model), controls in groups.items():
        for name in names:
            results[(name, dataset, model)] = _check(name, dataset, model, controls, pending.get((dataset, model)))
    return Validation(archive, groups, results, pending)


def _read_runs(archive: Path) -> list[dict]:
    from ..rundir import SweepDir

    sweep = SweepDir(archive)
    if not sweep.runs_dir.is_dir():
        raise ValidationError(f"no validation archive at {archive}")
    out = []
    for path in sorted(p for p in sweep.runs_dir.iterdir() if p.is_dir()):
        run = sweep.run(path.name)
        entry = run.read_yardsticks()
        if not entry.get("values") or not run.file(run.RESULT).is_file():
            continue
        out.append(
            {"id": path.name, "config": run.read_config(), "result": run.read_result(), "values": entry["values"]}
        )
    return out


def _label(config) -> str:
    from ..config import run_id_parts

    return "-".join(run_id_parts(config))


def _controls(runs: list[dict], thresholds: Mapping[str, float]) -> dict[tuple[str, str], dict[str, Control]]:
    from ..methods import get_method

    groups: dict[tuple[str, str], dict[str, Control]] = {}
    for r in runs:
        c = r["config"]
        controls = groups.setdefault((c.dataset, c.model), {})
        if c.shuffle_labels:
            label, role = "shuffled labels", "shuffled"
        elif c.method == "standard":
            label, role = "standard", "standard"
        else:
            label, role = _label(c), "positive"
        control = controls.setdefault(label, Control(label, role))
        robust = r["result"].get("robust_accuracy")
        if get_method(c.method).family == "adversarial":
            control.adversarial = True
            need = thresholds.get(c.dataset)
            if need is None:
                raise ThresholdError(f"no robust accuracy threshold for dataset {c.dataset!r} in the claims file")
            if robust is None or robust < need:
                control.left_out.append(f"{r['id']}: robust accuracy {_fmt(robust)} < {need:g}")
                continue
        control.runs.append((r["id"], r["values"], robust))
        if role == "standard":
            floor = controls.setdefault("floor", Control("floor (fresh model)", "floor"))
            floor.runs.append(
                (r["id"], {k[: -len("_floor")]: v for k, v in r["values"].items() if k.endswith("_floor")}, None)
            )
    return groups


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.3f}"


def _pending(archive: Path, runs: list[dict]) -> dict[tuple[str, str], tuple[int, int]]:
    """Groups whose planned runs are not all archived with yardsticks: group -> (archived, planned)."""
    from ..experiments.archive import SPEC
    from ..experiments.spec import expand, load_spec
    from ..rundir import SweepDir

    spec_path = archive / SPEC
    budget = SweepDir(archive).read_sweep().get("budget")
    if not spec_path.is_file() or budget is None:
        return {}
    planned: dict[tuple[str, str], int] = {}
    for run in expand(load_spec(spec_path), budget):
        key = (run.config.dataset, run.config.model)
        planned[key] = planned.get(key, 0) + 1
    archived: dict[tuple[str, str], int] = {}
    for r in runs:
        key = (r["config"].dataset, r["config"].model)
        archived[key] = archived.get(key, 0) + 1
    return {k: (archived.get(k, 0), n) for k, n in planned.items() if archived.get(k, 0) < n}


def _values(control: Control, name: str) -> list[float]:
    return [v[name] for _, v, _ in control.runs if name in v and v[name] is not None and math.isfinite(v[name])]


def _check(name: str, dataset: str, model: str, controls: dict[str, Control], pending) -> GroupCheck:
    from ..metrics import Yardstick

    sign = 1 if Yardstick.parse(name).higher_is_better else -1
    out = GroupCheck(dataset, model, name, "pending")
    if pending is not None:
        out.reasons["pending"] = f"{dataset}/{model}: {pending[0]} of {pending[1]} runs archived"
        return out
    values = {label: _values(c, name) for label, c in controls.items()}
    out.summaries = {label: summarize(v) for label, v in values.items() if v}
    standard = values.get("standard", [])
    positives = [label for label, c in controls.items() if c.role == "positive" and len(values[label]) >= MIN_SEEDS]
    if len(standard) < MIN_SEEDS or not positives:
        out.status, out.reasons["pending"] = "fail", "too few standard runs or robust positive controls"
        out.checks = dict.fromkeys(CHECKS, None)
        return out
    expected, opposite = ("greater", "less") if sign > 0 else ("less", "greater")
    tested = holm([compare(values[p], standard, expected) for p in positives])
    against = holm([compare(values[p], standard, opposite) for p in positives])
    better = [p for p, c in zip(positives, tested) if c.p_holm is not None and c.p_holm < ALPHA]
    worse = [p for p, c in zip(positives, against) if c.p_holm is not None and c.p_holm < ALPHA]
    out.comparisons.update(zip(positives, tested))
    out.checks["positive"] = 2 * len(better) >= len(positives) and not worse
    out.reasons["positive"] = (
        f"{len(better)} of {len(positives)} positive controls significantly better than standard"
        + (f"; significantly worse: {', '.join(worse)}" if worse else "")
    )
    for check, label in (("floor", "floor"), ("shuffled", "shuffled labels")):
        other = values.get(label, [])
        if len(other) < MIN_SEEDS:
            out.checks[check], out.reasons[check] = None, f"no {label} runs"
            continue
        c = compare(standard, other, expected)
        out.comparisons[label] = c
        out.checks[check] = c.p is not None and c.p < ALPHA
        out.reasons[check] = f"standard - {label} {c.diff:+.3f}, p {c.p:.3g}" if c.p is not None else "no p-value"
    out.status = "pass" if all(out.checks[c] for c in CHECKS) else "fail"
    return out


def validation_table(validation: Validation, yardsticks: Iterable[str] | None = None) -> str:
    """The Markdown table of the validation: a row per yardstick, a column per validation group,
    each cell ``pass`` or ``fail (<failed checks>)`` or ``pending``."""
    groups = list(validation.groups)
    names = list(yardsticks) if yardsticks is not None else validation.yardsticks()
    head = "| yardstick | " + " | ".join(f"{d} / {m}" for d, m in groups) + " |"
    lines = [head, "|" + " --- |" * (len(groups) + 1)]
    for name in names:
        cells = []
        for d, m in groups:
            r = validation.results.get((name, d, m))
            if r is None:
                cells.append("-")
            elif r.status == "fail" and r.failed:
                cells.append(f"fail ({', '.join(r.failed)})")
            else:
                cells.append(r.status)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The pairings of the perceptually-aligned-gradients literature, in the order the choice prefers
#: them (Srinivas et al. 2023: the logit sum against s(x), the target logit against s(x|y)), then
#: the loss gradient against grad log p(y|x) = s(x|y) - s(x).
PREFERRED_PAIRINGS = (
    ("logit-sum", "score_alignment"),
    ("saliency", "class_score_alignment"),
    ("gradient", "posterior_score_alignment"),
)


def choose_score_yardstick(validation: Validation) -> str | None:
    """The score alignment the claims should use, by the rule declared with the validation
    (docs/metrics.md): the score yardstick that passes on the most validation groups (at least
    one); ties go to :data:`PREFERRED_PAIRINGS` in order, then the sigma nearest 0.25, clean before
    noisy, all pixels before unsaturated. None when no score yardstick passes anywhere."""
    from ..metrics import SCORE_METRICS, Yardstick

    passes: dict[str, int] = {}
    for (name, _, _), r in validation.results.items():
        if Yardstick.parse(name).metric in SCORE_METRICS:
            passes[name] = passes.get(name, 0) + (r.status == "pass")

    def rank(name: str) -> tuple:
        s = Yardstick.parse(name)
        pairing = (s.explainer, s.metric)
        order = PREFERRED_PAIRINGS.index(pairing) if pairing in PREFERRED_PAIRINGS else len(PREFERRED_PAIRINGS)
        return (-passes[name], order, abs(s.sigma - 0.25), s.point != "clean", s.pixels != "all", name)

    best = min(passes, key=rank, default=None)
    return best if best is not None and passes[best] > 0 else None


def validation_summary(validation: Validation, yardsticks: Iterable[str]) -> str:
    """The Markdown summary of the validation: per group, how many yardsticks pass, fail or wait,
    the robust accuracy of each adversarial control (counted runs / all), and the status of the
    yardsticks named (those the claims use)."""
    groups = list(validation.groups)
    head = ["", *(f"{d} / {m}" for d, m in groups)]
    counts = []
    for status in ("pass", "fail", "pending"):
        cells = [
            str(sum(r.status == status for (_, d, m), r in validation.results.items() if (d, m) == g)) for g in groups
        ]
        counts.append([f"yardsticks that {status}" if status != "pending" else "yardsticks pending", *cells])
    left = []
    for d, m in groups:
        controls = validation.groups[(d, m)].values()
        parts = [f"{c.label}: {len(c.runs)} of {len(c.runs) + len(c.left_out)}" for c in controls if c.left_out]
        left.append("; ".join(parts) or "none")
    robust = []
    for d, m in groups:
        controls = validation.groups[(d, m)].values()
        means = [(c.label, [r for _, _, r in c.runs if r is not None]) for c in controls if c.adversarial]
        robust.append("; ".join(f"{label} {sum(v) / len(v):.3f}" for label, v in means if v) or "-")
    rows = counts + [
        ["adversarial runs counted (robust) / trained, where some were not robust", *left],
        ["robust accuracy of the counted adversarial runs at their own radius (mean)", *robust],
    ]
    for name in yardsticks:
        cells = []
        for d, m in groups:
            r = validation.results.get((name, d, m))
            cells.append("-" if r is None else r.status + (f" ({', '.join(r.failed)})" if r.failed else ""))
        rows.append([f"`{name}`", *cells])
    from .formatting import markdown_table

    return markdown_table(head, rows)

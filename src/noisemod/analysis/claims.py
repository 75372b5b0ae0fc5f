"""Claims as data, verdicts as computation.

A claims file (``claims.yaml`` beside this module, bundled with the package) lists the paper's
claims and our own questions. Each names an archived sweep (``results/<archive>/``), a metric (a
results.csv column: ``vii``, ``test_accuracy``, ``robust_accuracy``, ``gradient_alignment``, ...),
the direction the paper (or the question) expects, and the two sides compared: settings that
select runs (``a`` and ``b``), one comparison per group of ``by`` settings found in the archive::

    claims:
      - id: fig3
        title: noise modulation gives a higher VII than standard training (Fig. 3)
        source: paper
        archive: fig3-cpu
        metric: vii
        direction: higher            # a's metric is higher than b's
        a: {method: nm, beta: 0.5}
        b: {method: standard}
        by: [dataset, model]

The rule (docs/RESULTS.md says it too): each comparison is the difference of the seed means with
its 95% Welch interval, Welch's p and the exact permutation p (:mod:`noisemod.analysis.stats`); the
comparison's p is the larger of the two, Holm-corrected within the claim. A comparison *agrees*
when that p < 0.05 and the difference has the expected sign, *disagrees* when p < 0.05 the other
way, and is *not significant* otherwise. A claim is **reproduced** when every comparison agrees,
**partly** when some agree and none disagrees, **contradicted** when some disagree and none
agrees, **mixed** when some of each, **inconclusive** when none is significant. A claim is **pending**
while its archive lacks some of the runs its sweep plans for either side (an archive still being
filled; a run counts as archived once it has the claim's metric, so one trained but not yet
interpreted still counts as missing for an interpretability column): the groups whose runs are all
archived are compared and shown, but no verdict is computed from part of the sweep.

A claim may name a list of archives (``archive: [protocol-tier1, protocol-tier2]``: one sweep run
under several budgets, each archived as it finished): their runs are pooled, each group still
compared within one budget, and the claim is pending while any of them lacks runs it plans.

A claim may ``restate`` another (``restates: nm-vii``): the same metric and direction, asked at
another budget (the paper's protocol against our short CPU runs); :func:`changes_table` sets them
side by side, group by group, and marks where the outcome changed.

A comparison never mixes budgets: both sides must have the same epochs, training images and (for
an interpretability column) number of images scored, or the claim is refused naming them.

A comparison of methods that is not a claim (:func:`comparisons`: every condition of a sweep
against one reference method, as the report and the docs' ``versus`` and ``cost`` parts show it)
uses the same statistics, Holm-corrected over the sweep per metric.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from ..config import get_setting
from ..rundir import SweepDir
from .formatting import number, signed
from .stats import Comparison, Summary, compare, holm, summarize
from .tables import condition_label, is_number, with_yardsticks

__all__ = [
    "ALPHA",
    "CHOSEN_SCORE",
    "COMPARED",
    "VERDICTS",
    "ClaimError",
    "ClaimResult",
    "archive_names",
    "changes_table",
    "comparisons",
    "evaluate_claims",
    "is_yardstick",
    "load_claims",
    "load_rules",
    "outcome",
    "tally",
    "verdict",
    "verdict_table",
    "verify",
    "yardstick_of",
]

ALPHA = 0.05
VERDICTS = ("reproduced", "partly", "contradicted", "mixed", "inconclusive", "not tested", "pending")
DIRECTIONS = {"higher": 1, "lower": -1}
BUDGET = ("epochs", "train_size")  # settings a comparison may not mix (and the images scored, below)
KEYS = {"id", "title", "source", "archive", "metric", "direction", "a", "b", "by", "note", "restates", "test", "margin"}
KEYS |= {"also"}
TESTS = (
    "difference",
    "non-inferiority",
)  # a claim's test: a differs from b, or a is not worse than b by more than margin
MIN_RUNS = 3  # runs a side needs once non-robust adversarial runs are left out


class ClaimError(ValueError):
    """A claim that cannot be evaluated: a missing archive, condition or metric, or mixed budgets."""


@dataclass
class ClaimResult:
    """One claim evaluated: its comparisons (dicts with the group, both summaries and the
    comparison; ``also``: the secondary metrics' comparisons, shown, not judged) and its verdict;
    ``untested``: the groups left out of the verdict, each with why (its metric failed or awaits
    validation on the group's dataset, or an adversarial side is not robust); for a pending
    claim, ``runs``: (archived, planned) of its sides."""

    claim: dict
    comparisons: list[dict] = field(default_factory=list)
    verdict: str = "inconclusive"
    runs: tuple[int, int] | None = None
    untested: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        def plain(v):  # the statistics objects, also those nested in the secondary metrics' mapping
            if isinstance(v, (Summary, Comparison)):
                return v.to_dict()
            return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

        out = {**self.claim, "verdict": self.verdict, "comparisons": [plain(c) for c in self.comparisons]}
        if self.untested:
            out["untested"] = self.untested
        return {**out, "runs": list(self.runs)} if self.runs else out


def load_claims(path) -> list[dict]:
    """The claims of a YAML file, each checked for its keys and values; errors name the file, the
    line and the claim (a file that is not valid YAML: the file and the line)."""
    from ..io import CorruptFileError, read_yaml

    path = Path(path)
    if not path.is_file():
        raise ClaimError(f"claims file not found: {path}")
    try:
        doc = read_yaml(path)
    except CorruptFileError as e:
        raise ClaimError(str(e)) from None
    data = doc.value or {}
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list) or not claims:
        raise ClaimError(f"{doc.where('claims')}: expected a mapping with a non-empty list 'claims'")
    seen = set()
    for i, c in enumerate(claims):
        where = f"{doc.where(f'claims[{i}]')}: claim {c.get('id', i) if isinstance(c, dict) else i}"
        if not isinstance(c, dict):
            raise ClaimError(f"{where}: expected a mapping")
        missing = sorted({"id", "title", "archive", "metric", "direction", "a", "b"} - set(c))
        unknown = sorted(set(c) - KEYS)
        if missing or unknown:
            raise ClaimError(f"{where}: missing {', '.join(missing) or '-'}; unknown {', '.join(unknown) or '-'}")
        _check_claim(c, where, seen)
        _check_test(c, where)
        seen.add(c["id"])
    by_id = {c["id"]: c for c in claims}
    for i, c in enumerate(claims):
        if "restates" not in c:
            continue
        where, earlier = f"{doc.where(f'claims[{i}].restates')}: claim {c['id']}", by_id.get(c["restates"])
        if earlier is None or earlier is c:
            raise ClaimError(f"{where}: restates {c['restates']!r}, which is not another claim of the file")
        for key in ("metric", "direction"):
            if earlier[key] != c[key]:
                raise ClaimError(
                    f"{where}: restates {c['restates']!r} with another {key} ({c[key]!r} against "
                    f"{earlier[key]!r}); a restated claim asks the same question at another budget"
                )
    return claims


#: the rules a claims file declares beside its claims, with their defaults
RULES = {"robust_accuracy": {}, "validation": "validation", "planned_archives": {}}


def load_rules(path) -> dict:
    """The rules of a claims file beside its claims: ``robust_accuracy`` (dataset -> the robust
    accuracy, PGD-50 at its own radius and norm, an adversarial run needs to count as adversarial
    training) and ``validation`` (the archive of the metrics' validation, ``results/<name>``)."""
    from ..io import CorruptFileError, read_yaml

    path = Path(path)
    if not path.is_file():
        raise ClaimError(f"claims file not found: {path}")
    try:
        data = read_yaml(path).value or {}
    except CorruptFileError as e:
        raise ClaimError(str(e)) from None
    rules = {k: data.get(k, v) for k, v in RULES.items()} if isinstance(data, dict) else dict(RULES)
    thresholds = rules["robust_accuracy"]
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in thresholds.values()
    ):
        raise ClaimError(f"{path}: robust_accuracy must map datasets to numbers in [0, 1], got {thresholds!r}")
    if not isinstance(rules["validation"], str) or not rules["validation"]:
        raise ClaimError(f"{path}: validation must be an archive name, got {rules['validation']!r}")
    rules["planned_archives"] = _planned_archives(path, rules["planned_archives"])
    return rules


def _planned_archives(path: Path, planned) -> dict[str, dict]:
    """``planned_archives`` checked: archive name -> ``{spec: <bundled spec>, budget: <its budget>}``,
    the sweep that will make the archive; a spec that is not bundled or a budget it lacks is refused."""
    from ..experiments.catalog import bundled_specs
    from ..experiments.spec import expand, load_spec

    if not isinstance(planned, dict):
        raise ClaimError(f"{path}: planned_archives must map archive names to {{spec, budget}}, got {planned!r}")
    for name, plan in planned.items():
        if not isinstance(plan, dict) or set(plan) != {"spec", "budget"}:
            raise ClaimError(f"{path}: planned_archives.{name} must be {{spec: NAME, budget: NAME}}, got {plan!r}")
        specs = bundled_specs()
        if plan["spec"] not in specs:
            raise ClaimError(
                f"{path}: planned_archives.{name}: no bundled spec {plan['spec']!r} (bundled: {', '.join(specs)})"
            )
        try:
            expand(load_spec(specs[plan["spec"]]), plan["budget"])
        except ValueError as e:
            raise ClaimError(f"{path}: planned_archives.{name}: {e}") from None
    return planned


def _check_test(c: dict, where: str) -> None:
    """A claim's ``test`` (default ``difference``), its ``margin`` (required by, and only with,
    ``non-inferiority``: a positive number in the metric's units) and ``also`` (secondary metrics)."""
    test = c.setdefault("test", "difference")
    if test not in TESTS:
        raise ClaimError(f"{where}: test must be one of {', '.join(TESTS)}, got {test!r}")
    margin = c.get("margin")
    if test == "non-inferiority" and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin <= 0):
        raise ClaimError(f"{where}: a non-inferiority claim needs margin: a positive number declared in advance")
    if test != "non-inferiority" and margin is not None:
        raise ClaimError(f"{where}: margin applies to test: non-inferiority only")
    also = c.setdefault("also", [])
    if not isinstance(also, list) or not all(isinstance(m, str) and m for m in also) or c["metric"] in also:
        raise ClaimError(f"{where}: also must be a list of other metrics (columns of the archived results)")


#: A claim's metric standing for the score alignment that the validation chooses by its declared
#: rule (:func:`noisemod.analysis.validation.choose_score_yardstick`): a claim naming it waits for
#: the validation to complete, and is then judged with the chosen yardstick.
CHOSEN_SCORE = "chosen_score_alignment"


def is_yardstick(metric: str) -> bool:
    """Whether a claim's metric names a yardstick (``explainer/metric[@...]``), read from the runs'
    yardsticks.json rather than from a results.csv column."""
    return "/" in metric


def yardstick_of(metric: str, score_sigma: float = 0.25) -> str | None:
    """The yardstick (``explainer/metric[@sigma]``) a claim's metric measures with, or None for a
    column that needs no validation (accuracy, time, robustness): ``vii`` is the gradient's VII;
    ``<explainer>_<metric>`` an interpretability column, a score alignment at ``score_sigma`` (the
    sigma the archives were scored at); a yardstick's name is itself; :data:`CHOSEN_SCORE` stays
    itself until the validation resolves it."""
    from ..explainers import EXPLAINERS
    from ..metrics import METRICS, SCORE_METRICS, Yardstick

    if metric == CHOSEN_SCORE:
        return CHOSEN_SCORE
    if is_yardstick(metric):
        return Yardstick.parse(metric).name
    if metric == "vii":
        return "gradient/vii"
    for explainer in sorted(EXPLAINERS, key=len, reverse=True):
        name = metric.removeprefix(explainer + "_")
        if name != metric and name in METRICS:
            return f"{explainer}/{name}" + (f"@{score_sigma:g}" if name in SCORE_METRICS else "")
    return None


def _check_claim(c: dict, where: str, seen: set) -> None:
    """One claim's values: its names and texts, archive names, direction, sides, and an id not used before."""
    for key in ("id", "title", "metric", "restates"):
        if key in c and (not isinstance(c[key], str) or not c[key]):
            raise ClaimError(f"{where}: {key} must be a text, got {c[key]!r}")
    by = c.get("by")
    if by is not None and (not isinstance(by, list) or not all(isinstance(k, str) for k in by)):
        raise ClaimError(f"{where}: by must be a list of settings, got {by!r}")
    names = c["archive"] if isinstance(c["archive"], list) else [c["archive"]]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ClaimError(f"{where}: archive must be an archive name or a non-empty list of them, got {c['archive']!r}")
    if not isinstance(c["direction"], str) or c["direction"] not in DIRECTIONS:
        raise ClaimError(f"{where}: direction must be higher or lower, got {c['direction']!r}")
    if not isinstance(c["a"], dict) or not isinstance(c["b"], dict):
        raise ClaimError(f"{where}: a and b must be mappings of settings")
    if c["id"] in seen:
        raise ClaimError(f"{where}: the id is used twice")
    for metric in (c["metric"], *(c.get("also") or [])):
        if isinstance(metric, str) and is_yardstick(metric):
            try:
                yardstick_of(metric)
            except ValueError as e:
                raise ClaimError(f"{where}: {e}") from None


def archive_names(claim: Mapping) -> list[str]:
    """The archives a claim reads (its ``archive``: one name or a list)."""
    return list(claim["archive"]) if isinstance(claim["archive"], list) else [claim["archive"]]


def _where(claim: Mapping) -> str:
    return ", ".join(f"results/{name}" for name in archive_names(claim))


#: the key under which each pooled row keeps the archive it came from
_SWEEP = "_sweep"
_YARDSTICK_IMAGES = "_yardstick_images"  # a row's key for the test images its run's yardsticks were measured on


def _matches(row: Mapping, selection: Mapping) -> bool:
    return all(row.get(k) == v for k, v in selection.items())


def _images_scored(row: Mapping, metric: str) -> object:
    """For an interpretability column (``<explainer>_<metric>``): the images its explainer scored;
    for a yardstick, the images of the run's yardsticks.json."""
    archive = row[_SWEEP]
    if is_yardstick(metric):
        return row[_YARDSTICK_IMAGES]
    explainer = next(
        (e for e in archive.run(row["run_id"]).read_interpretability() if metric.startswith(e + "_")), None
    )
    if explainer is None:
        return None
    entry = archive.run(row["run_id"]).read_interpretability()[explainer]
    return entry.get("n")


def _side(claim: dict, rows: list[dict], selection: Mapping, group: Mapping, side: str) -> list[dict]:
    chosen = [r for r in rows if _matches(r, selection) and _matches(r, group)]
    if not chosen:
        raise ClaimError(
            f"claim {claim['id']}: no finished run in {_where(claim)} matches {side}={dict(selection)}"
            + (f" for {dict(group)}" if group else "")
        )
    return chosen


def _budget(claim: dict, rows: list[dict]) -> dict:
    budget = {k: sorted({repr(r.get(k)) for r in rows}) for k in BUDGET}
    budget["images scored"] = sorted({repr(_images_scored(r, claim["metric"])) for r in rows})
    return budget


def _comparison(claim: dict, rows: list[dict], group: dict, rules: Mapping | None = None) -> dict:
    a = _side(claim, rows, claim["a"], group, "a")
    b = _side(claim, rows, claim["b"], group, "b")
    dropped = [_not_robust(claim, side, name, rules or {}) for side, name in ((a, "a"), (b, "b"))]
    if any(dropped):
        return {"group": group, "untested": "; ".join(d for d in dropped if d)}
    budget_a, budget_b = _budget(claim, a), _budget(claim, b)
    for k in budget_a:
        if len(budget_a[k]) > 1 or len(budget_b[k]) > 1 or budget_a[k] != budget_b[k]:
            raise ClaimError(
                f"claim {claim['id']}: mixes budgets ({k}: {', '.join(budget_a[k])} on side a, "
                f"{', '.join(budget_b[k])} on side b{' for ' + str(group) if group else ''}); compare like with like"
            )
    a, b = (_robust_runs(claim, side, rules or {}) for side in (a, b))
    out = {"group": group, **_compared(claim, claim["metric"], a, b)}
    out["also"] = {m: _compared(claim, m, a, b)["comparison"] for m in claim.get("also", [])}
    return out


def _compared(claim: dict, metric: str, a: list[dict], b: list[dict]) -> dict:
    """Both sides' summaries of ``metric`` and their comparison; for a non-inferiority claim's own
    metric, the comparison of ``a`` moved by the margin in the expected direction against ``b``
    (significant when ``a`` is better than ``b`` less the margin), with ``margin`` recorded."""
    values = [[r.get(metric) for r in side] for side in (a, b)]
    if any(v in (None, "") for side in values for v in side):
        raise ClaimError(f"claim {claim['id']}: metric {metric!r} is missing for some runs in {_where(claim)}")
    values = [[float(v) for v in side] for side in values]
    out = {"a": summarize(values[0]), "b": summarize(values[1])}
    if claim.get("test") == "non-inferiority" and metric == claim["metric"]:
        shift = DIRECTIONS[claim["direction"]] * claim["margin"]
        return {**out, "comparison": compare([v + shift for v in values[0]], values[1]), "margin": claim["margin"]}
    return {**out, "comparison": compare(*values)}


def _is_adversarial(side: Mapping) -> bool:
    from ..methods import METHODS

    method = METHODS.get(side.get("method"), None) if side.get("method") else None
    return method is not None and method.family == "adversarial"


def _robust_runs(claim: dict, runs: list[dict], rules: Mapping) -> list[dict]:
    """The runs of a side that count: for an adversarial method, those whose robust accuracy at
    their own radius reaches the dataset's threshold (``robust_accuracy`` in the claims file)."""
    thresholds = rules.get("robust_accuracy") or {}
    if not runs or not _is_adversarial(runs[0]) or not thresholds:
        return runs
    return [r for r in runs if is_number(r.get("robust_accuracy")) and r["robust_accuracy"] >= thresholds[r["dataset"]]]


def _not_robust(claim: dict, runs: list[dict], side: str, rules: Mapping) -> str:
    """Why an adversarial side cannot stand for adversarial training ("" when it can): fewer than
    :data:`MIN_RUNS` of its runs reach the robust accuracy threshold of their dataset."""
    thresholds = rules.get("robust_accuracy") or {}
    if not runs or not _is_adversarial(runs[0]) or not thresholds:
        return ""
    dataset = runs[0].get("dataset")
    if dataset not in thresholds:
        raise ClaimError(
            f"claim {claim['id']}: no robust_accuracy threshold for dataset {dataset!r} in the claims file"
        )
    kept = _robust_runs(claim, runs, rules)
    if len(kept) >= MIN_RUNS:
        return ""
    seen = [f"{float(r['robust_accuracy']):.3f}" for r in runs if is_number(r.get("robust_accuracy"))]
    return (
        f"{side} not robust: {len(kept)} of {len(runs)} runs reach robust accuracy {thresholds[dataset]:g} "
        f"at their radius (got {', '.join(seen) or 'none'})"
    )


def outcome(comparison: Comparison, direction: str) -> str:
    """One Holm-corrected comparison under the rule: ``agrees``, ``disagrees`` or ``not significant``."""
    signed = comparison.diff * DIRECTIONS[direction]
    if comparison.p_holm is None or comparison.p_holm >= ALPHA or signed == 0:
        return "not significant"
    return "agrees" if signed > 0 else "disagrees"


def tally(comparisons: Sequence[Comparison], direction: str) -> tuple[int, int]:
    """(agree, disagree): the Holm-corrected comparisons significant in the expected direction, and the other way."""
    outcomes = [outcome(c, direction) for c in comparisons]
    return outcomes.count("agrees"), outcomes.count("disagrees")


def verdict(comparisons: Sequence[Comparison], direction: str) -> str:
    """The verdict of one claim from its Holm-corrected comparisons (the module's rule)."""
    agree, disagree = tally(comparisons, direction)
    if agree and disagree:
        return "mixed"
    if disagree:
        return "contradicted"
    if agree:
        return "reproduced" if agree == len(comparisons) else "partly"
    return "inconclusive"


def planned_runs(claim: dict, archive: SweepDir) -> list[tuple[str, dict]]:
    """The runs (id, settings) the archive's sweep plans (its spec.yaml under sweep.json's budget) for either side."""
    from ..experiments.archive import SPEC

    budget = archive.read_sweep().get("budget")
    if budget is None or not archive.file(SPEC).is_file():
        return []
    return _planned_by(claim, archive.file(SPEC), budget)


def _planned_by(claim: dict, spec: Path, budget: str) -> list[tuple[str, dict]]:
    """The runs (id, settings) the spec file plans under ``budget`` for either side of the claim."""
    sides = (claim["a"], claim["b"])
    plan = _plan(str(spec), hashlib.sha256(spec.read_bytes()).hexdigest(), budget)
    return [(run_id, c) for run_id, c in plan if any(_matches(c, side) for side in sides)]


@lru_cache(maxsize=16)
def _plan(spec: str, digest: str, budget: str) -> tuple[tuple[str, dict], ...]:
    """The runs (id, settings) the spec file plans under ``budget``; cached by the file's content
    (``digest``), as every claim on an archive asks for the same plan."""
    from ..experiments.spec import expand, load_spec

    return tuple((r.run_id, r.config.to_dict()) for r in expand(load_spec(spec), budget))


def evaluate_claim(claim: dict, results_root, rules: Mapping | None = None, validation=None) -> ClaimResult:
    """One claim against the archives it names under ``results_root`` (their runs pooled).

    ``rules``: the claims file's (:func:`load_rules`): adversarial sides count only with robust runs.
    ``validation``: a :class:`~noisemod.analysis.validation.Validation`; a group is compared only
    where the yardstick of the claim's metric passed on the group's dataset (else it is left out,
    with why), and the claim is pending while a group awaits its validation."""
    rows, planned = [], []
    to_come = (rules or {}).get("planned_archives") or {}
    for name in archive_names(claim):
        archive = SweepDir(Path(results_root) / name)
        if not archive.file(archive.RESULTS).is_file():
            if name not in to_come:
                raise ClaimError(f"claim {claim['id']}: no archived sweep {archive.path} ({archive.RESULTS} missing)")
            planned += _planned_by(claim, _bundled(to_come[name]["spec"]), to_come[name]["budget"])
            continue
        if name in to_come and archive.read_sweep().get("budget") != to_come[name]["budget"]:
            raise ClaimError(
                f"claim {claim['id']}: {archive.path} was made under budget {archive.read_sweep().get('budget')!r}, "
                f"planned_archives says {to_come[name]['budget']!r}"
            )
        metrics = [m for m in (claim["metric"], *claim.get("also", [])) if is_yardstick(m)]
        these = with_yardsticks(archive.path, archive.read_results(), metrics, images=_YARDSTICK_IMAGES)
        if these and claim["metric"] not in these[0]:
            raise ClaimError(f"claim {claim['id']}: no metric {claim['metric']!r} in {archive.file(archive.RESULTS)}")
        rows += [dict(r, **{_SWEEP: archive}) for r in these]
        planned += planned_runs(claim, archive)
    by = list(claim.get("by") or [])
    # a run counts once it has the claim's metric: a trained run whose interpretation is still to
    # come (a sweep paused between the two) leaves its group waiting, not compared
    archived = {
        r["run_id"] for r in rows if r.get("status") in (None, "completed") and r.get(claim["metric"]) not in (None, "")
    }
    waiting = {tuple(c.get(k) for k in by) for run_id, c in planned if run_id not in archived}
    selected = [r for r in rows if _matches(r, claim["a"]) or _matches(r, claim["b"])]
    groups = list(dict.fromkeys(tuple(r.get(k) for k in by) for r in selected)) if by else [()]
    found, untested, unvalidated = [], [], False
    for g in (g for g in groups if g not in waiting):
        group = dict(zip(by, g))
        why, pending = _validated(claim, group, selected, validation)
        unvalidated |= pending
        c = {"group": group, "untested": why} if why else _comparison(claim, rows, group, rules)
        (untested if "untested" in c else found).append(c)
    corrected = holm([c["comparison"] for c in found])
    for c, fixed in zip(found, corrected):
        c["comparison"] = fixed
    if waiting:  # the groups complete so far are shown; no verdict from part of the sweep
        runs = (sum(r in archived for r, _ in planned), len(planned))
        return ClaimResult(claim, found, "pending", runs, untested)
    if unvalidated:
        return ClaimResult(claim, found, "pending", None, untested)
    result = verdict(corrected, claim["direction"]) if found else "not tested"
    return ClaimResult(claim, found, result, None, untested)


def _bundled(name: str) -> Path:
    from ..experiments.catalog import bundled_specs

    return bundled_specs()[name]


def _validated(claim: dict, group: Mapping, rows: list[dict], validation) -> tuple[str, bool]:
    """Why a group is not tested ("" when it is), and whether it waits for its validation."""
    stick = yardstick_of(claim["metric"])
    if stick is None or validation is None:
        return "", False
    datasets = [group["dataset"]] if "dataset" in group else sorted({r.get("dataset") for r in rows})
    for dataset in datasets:
        status, why = validation.status(stick, dataset)
        if status == "pending":
            return f"not tested yet: {stick} awaits its validation on {dataset} ({why})", True
        if status != "pass":
            return f"not tested: {stick} " + (
                f"fails its validation on {dataset} ({why})" if status == "fail" else why
            ), False
    return "", False


def evaluate_claims(path, results_root, validation=None) -> list[ClaimResult]:
    """Every claim of the file at ``path`` against the archives under ``results_root``, by the
    file's rules, each interpretability metric judged only where its validation passed; each archive
    verified first (:func:`noisemod.experiments.archive.verify_archive`: one that does not verify is
    refused, naming the run and the column). ``validation``: the validation of the rules' archive when
    the caller has computed it already (:func:`noisemod.analysis.validation.validate`), else it is
    computed here."""
    claims, rules = load_claims(path), load_rules(path)
    for name in dict.fromkeys(n for c in claims for n in archive_names(c)):
        verify(Path(results_root) / name)
    validation = _validation(claims, rules, results_root, validation)
    return [
        _evaluate_chosen(c, results_root, rules, validation)
        if c["metric"] == CHOSEN_SCORE
        else evaluate_claim(c, results_root, rules, validation)
        for c in claims
    ]


def _evaluate_chosen(claim: dict, results_root, rules: Mapping, validation) -> ClaimResult:
    """A claim on :data:`CHOSEN_SCORE`: pending while the validation is incomplete (the choice
    could still change), not tested when no score yardstick passes, else judged with the chosen one."""
    from .validation import choose_score_yardstick

    if validation.pending:
        waiting = "; ".join(f"{d}/{m}: {n} of {k} runs" for (d, m), (n, k) in validation.pending.items())
        why = f"not tested yet: the score alignment is chosen once the validation is complete ({waiting})"
        return ClaimResult(claim, [], "pending", None, [{"group": {}, "untested": why}])
    chosen = choose_score_yardstick(validation)
    if chosen is None:
        why = "not tested: no score yardstick passes its validation on any group"
        return ClaimResult(claim, [], "not tested", None, [{"group": {}, "untested": why}])
    return evaluate_claim(dict(claim, metric=chosen), results_root, rules, validation)


def _validation(claims: Sequence[dict], rules: Mapping, results_root, validation=None):
    """The validation of the claims' yardsticks (``validation`` when given, else computed), or None
    when no claim's metric needs one.

    Raises ClaimError naming the metric and the command that validates it when the validation
    archive is missing or never measured a yardstick a claim uses."""
    from .validation import ThresholdError, ValidationError, validate

    needed = {c["metric"]: yardstick_of(c["metric"]) for c in claims}
    needed = {m: y for m, y in needed.items() if y is not None}
    if not needed:
        return None
    command = (
        "noisemod sweep validation --budget cpu --out sweeps/validation --data-root DATA "
        f"--archive {Path(results_root) / rules['validation']}"
    )
    try:
        if validation is None:
            validation = validate(Path(results_root) / rules["validation"], rules["robust_accuracy"])
    except ThresholdError as e:
        raise ClaimError(f"the validation in {Path(results_root) / rules['validation']}: {e}") from None
    except ValidationError as e:
        metrics = ", ".join(sorted(needed))
        raise ClaimError(
            f"metric(s) {metrics} have no validation record ({e}); validate them with `{command}`"
        ) from None
    missing = sorted(m for m, y in needed.items() if y != CHOSEN_SCORE and y not in validation.yardsticks())
    if missing:
        raise ClaimError(
            f"metric(s) {', '.join(missing)} have no validation record in {validation.archive}: "
            f"their yardsticks were never measured; validate them with `{command}`"
        )
    return validation


def verify(folder: Path) -> None:
    """Refuse an archive that does not verify (a :class:`ClaimError` with the reason); a folder
    without results.csv is left to the claim that names it."""
    from ..experiments.archive import ArchiveError, verify_archive

    if SweepDir(folder).file(SweepDir.RESULTS).is_file():
        try:
            verify_archive(folder)
        except ArchiveError as e:
            raise ClaimError(f"archive {folder} does not verify: {e}") from None


COMPARED = ("test_accuracy", "vii")  # the metrics each condition is compared on against standard training


def comparisons(
    rows: Sequence[Mapping],
    conditions: Sequence[str],
    metrics: Sequence[str] = COMPARED,
    reference: str = "standard",
) -> list[dict]:
    """Each condition but the ``reference`` method (standard training by default) against that
    method with the same settings that are not a method's (dataset, model, epochs, training
    images, ...): per metric, both sides' summaries (the reference's under ``"standard"``) and
    :func:`noisemod.analysis.stats.compare` of the seeds (condition - reference), Holm-corrected per
    metric within each dataset and model. Conditions without such a reference, or a side without values, are left out;
    so is a reference method with more than one condition (nm at two betas: which one?)."""
    shared = [k for k in conditions if k != "method" and not get_setting(k).method]
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in conditions), []).append(r)
    out = []
    for metric in metrics:
        family = []
        for key, members in groups.items():
            cond = dict(zip(conditions, key))
            ref = [r for r in rows if r.get("method") == reference and all(r.get(k) == cond[k] for k in shared)]
            a, b = ([float(r[metric]) for r in side if is_number(r.get(metric))] for side in (members, ref))
            if cond.get("method") == reference or not a or not b or len({condition_label(r) for r in ref}) > 1:
                continue
            family.append(
                {
                    **{k: cond[k] for k in ("dataset", "model") if k in cond},
                    "condition": condition_label(members[0]),
                    "metric": metric,
                    "a": summarize(a).to_dict(),
                    "standard": summarize(b).to_dict(),
                    "comparison": compare(a, b),
                }
            )
        # Holm within each dataset and model: a family a table's rule can pass (over a whole archive,
        # 5 seeds a side could never reach p < 0.05 with some twenty comparisons)
        for pair in dict.fromkeys((e.get("dataset"), e.get("model")) for e in family):
            members = [e for e in family if (e.get("dataset"), e.get("model")) == pair]
            for entry, fixed in zip(members, holm([e["comparison"] for e in members])):
                entry["comparison"] = fixed.to_dict()
        out += family
    return out


def evidence(c: dict, direction: str = "higher") -> str:
    """One comparison in one line: group, a and b (mean, n), the difference with its CI, Holm p (for
    a non-inferiority test, the difference a - b and the margin it is tested against); a group left
    out of the verdict: why; secondary metrics (``also``): their difference, not judged."""
    group = ", ".join(str(v) for v in c["group"].values())
    head = group + ": " if group else ""
    if "untested" in c:
        return f"{head}{c['untested']}"
    d = c["comparison"]
    if "margin" in c:
        shift = DIRECTIONS[direction] * c["margin"]
        moved = replace(d, diff=d.diff - shift, ci_low=_less(d.ci_low, shift), ci_high=_less(d.ci_high, shift))
        diff = f"{_difference(moved)} against margin {-shift:+g}"
    else:
        diff = _difference(d)
    also = "".join(f"; {m} {_difference(x, holm_p=False)} (not judged)" for m, x in c.get("also", {}).items())
    a, b = number(c["a"].mean, 3), number(c["b"].mean, 3)
    return f"{head}{a} (n={c['a'].n}) vs {b} (n={c['b'].n}), diff {diff}{also}"


def _less(value: float | None, shift: float) -> float | None:
    return None if value is None else value - shift


def _difference(d: Comparison, holm_p: bool = True) -> str:
    """A comparison's difference, its 95% interval and its Holm p: ``+0.100 [+0.088, +0.112], p 0.008``
    (its uncorrected p without ``holm_p``)."""
    return f"{signed(d.diff, d.ci_low, d.ci_high)}, p {number(d.p_holm if holm_p else d.p, 3)}"


def verdict_table(results: Sequence[ClaimResult]) -> str:
    """The Markdown verdict table: claim, source, verdict, one line of evidence per comparison."""
    lines = [
        "| claim | source | verdict | evidence (a vs b, difference [95% CI], Holm p) |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        c = r.claim
        waiting = [f"{r.runs[0]} of {r.runs[1]} runs archived"] if r.runs else []
        shown = [evidence(x, c["direction"]) for x in r.comparisons + r.untested]
        cell = "<br>".join(shown + waiting)
        lines.append(f"| {c['title']} ({c['metric']}) | {c.get('source', 'ours')} | **{r.verdict}** | {cell} |")
    return "\n".join(lines)


def _change_cell(c: dict | None, direction: str) -> str:
    if c is None:
        return "-"
    return f"{_difference(c['comparison'])}: {outcome(c['comparison'], direction)}"


def changes_table(results: Sequence[ClaimResult]) -> str:
    """The Markdown table of each claim that ``restates`` another (the same question at another
    budget) against it: both verdicts, then per group both comparisons and their outcomes, and
    ``yes`` where the outcome changed. ``-``: no comparison of that group (not in that sweep, or
    its runs not all archived yet)."""
    by_id = {r.claim["id"]: r for r in results}
    lines = [
        "| claim | restates | verdict before -> now | group | before: diff [95% CI], Holm p | now | changed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for now in (r for r in results if r.claim.get("restates")):
        before = by_id[now.claim["restates"]]
        direction = now.claim["direction"]
        found = [{tuple(c["group"].items()): c for c in r.comparisons} for r in (before, now)]
        groups = list(dict.fromkeys([*found[0], *found[1]])) or [()]
        for i, g in enumerate(groups):
            old, new = (f.get(g) for f in found)
            changed = (
                old is not None
                and new is not None
                and outcome(old["comparison"], direction) != outcome(new["comparison"], direction)
            )
            verdicts = f"{before.verdict} -> **{now.verdict}**"
            head = [now.claim["id"], before.claim["id"], verdicts] if i == 0 else ["", "", ""]
            cells = [", ".join(str(v) for _, v in g) or "-", _change_cell(old, direction), _change_cell(new, direction)]
            lines.append("| " + " | ".join([*head, *cells, "yes" if changed else ""]) + " |")
    return "\n".join(lines)

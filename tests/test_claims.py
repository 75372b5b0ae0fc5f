"""Claims as data: verdicts computed from an archive by the written rule, and refused when they cannot be."""

import json
import shutil

import pytest
from test_validation import toy_archive as toy_validation

from noisemod.analysis.claims import ClaimError, evaluate_claims, verdict, verdict_table
from noisemod.analysis.stats import Comparison, compare, holm
from noisemod.config import TrainConfig, field_names
from noisemod.rundir import RESULT_FIELDS, SweepDir, robustness_column

NM = [0.20, 0.21, 0.22, 0.205, 0.215]
STANDARD = [0.10, 0.11, 0.12, 0.105, 0.115]
FGSM = [0.30, 0.18, 0.25, 0.22, 0.15]


def write_archive(folder, rows) -> SweepDir:
    """A toy archive that verifies, as a sweep writes one: each row's run folder from its settings
    (config.json) and its results (result.json; ``<explainer>_<score>`` columns into
    interpretability.json, ``robust_accuracy_eps<eps>`` into robustness.json; a metrics.csv unless
    the test wrote one), sweep.json from the first row's spec and budget unless written, and
    results.csv made from those files (so every setting is a column); run folders of no row removed."""
    sweep = SweepDir(folder)
    if not sweep.file(sweep.SWEEP).is_file():
        sweep.write_sweep({"spec": rows[0].get("spec"), "budget": rows[0].get("budget")})
    info, table = sweep.read_sweep(), []
    for gone in sweep.runs_dir.glob("*") if sweep.runs_dir.is_dir() else ():
        if gone.name not in {row["run_id"] for row in rows}:  # the archive is replaced at once
            shutil.rmtree(gone)
    for row in rows:
        run = sweep.run(row["run_id"])
        run.path.mkdir(parents=True, exist_ok=True)
        config = TrainConfig.from_dict({k: v for k, v in row.items() if k in field_names()})
        run.write_config(config)
        run.write_result({k: v for k, v in row.items() if k in RESULT_FIELDS and v is not None})
        if not run.file(run.METRICS).is_file():
            run.write_metrics([])
        robust = robustness_column(0).partition("eps")[0] + "eps"
        for column, value in row.items():
            if value is None or column in RESULT_FIELDS or column in field_names() or column in ("run_id", "spec"):
                continue
            if column.startswith(robust):
                attack = {"eps": float(column[len(robust) :]), "images": 100, "norm": "linf"}
                run.write_robustness({"robust_accuracy": value, "robust_attack": attack})
            elif column not in ("budget", "status"):
                explainer, score = column.split("_", 1)
                entry = run.read_interpretability().get(explainer, {"scores": {}})
                run.write_interpretability(explainer, {**entry, "scores": {**entry["scores"], score: value}})
        result = {k: v for k, v in run.read_result().items() if not isinstance(v, dict)}
        table.append(
            {"run_id": row["run_id"], "spec": info.get("spec"), "budget": info.get("budget"), **config.to_dict(),
             "status": "completed", **result, **run.interpretability_columns(), **run.robustness_columns()}
        )  # fmt: skip
    sweep.write_results(table)
    return sweep


def archive(root, extra=()):
    rows = []
    for method, values in (("nm", NM), ("standard", STANDARD), ("fgsm", FGSM)):
        for seed, v in enumerate(values):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "t", "budget": "cpu", "status": "completed", "dataset": "mnist",
                 "model": "lenet", "method": method, "seed": seed, "epochs": 5, "test_accuracy": 0.9, "vii": v,
                 "robust_accuracy": 0.9 if method == "fgsm" else None}
            )  # fmt: skip
    write_archive(root / "results" / "toy", rows + list(extra))
    return root / "results"


RULES = "robust_accuracy: {mnist: 0.5, fashion-mnist: 0.4, cifar10: 0.2, digits: 0.5, synthetic: 0.5}\n"


def claims_file(tmp_path, text):
    path = tmp_path / "claims.yaml"
    path.write_text(text if "robust_accuracy" in text else RULES + text)
    if not (tmp_path / "results" / "validation").exists():  # VII and alignment pass their validation
        toy_validation(tmp_path / "results", datasets=("mnist", "fashion-mnist", "digits", "synthetic"))
    return path


CLAIM = """claims:
  - id: fig3
    title: nm raises VII
    source: paper
    archive: toy
    metric: {metric}
    direction: {direction}
    a: {{method: nm}}
    b: {{method: {b}}}
    by: [dataset, model]
"""


def test_a_clear_difference_in_the_expected_direction_is_reproduced(tmp_path):
    results = archive(tmp_path)
    [r] = evaluate_claims(claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard")), results)
    [c] = r.comparisons
    assert c["group"] == {"dataset": "mnist", "model": "lenet"} and c["a"].n == 5
    assert c["comparison"].diff == pytest.approx(0.1) and c["comparison"].p_holm < 0.05
    assert r.verdict == "reproduced"
    [r] = evaluate_claims(claims_file(tmp_path, CLAIM.format(metric="vii", direction="lower", b="standard")), results)
    assert r.verdict == "contradicted"
    [r] = evaluate_claims(claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="fgsm")), results)
    assert r.verdict == "inconclusive"  # a noisy side: the difference is inside the spread
    assert r.to_dict()["comparisons"][0]["comparison"]["p"] >= 0.05


def test_the_verdict_rule():
    agree, disagree, weak = (
        Comparison(5, 5, 0.1, 0.05, 0.15, 0.001, 0.008, p_holm=0.01),
        Comparison(5, 5, -0.1, -0.15, -0.05, 0.001, 0.008, p_holm=0.01),
        Comparison(5, 5, 0.1, -0.1, 0.3, 0.3, 0.4, p_holm=0.6),
    )
    assert verdict([agree, agree], "higher") == "reproduced"
    assert verdict([agree, weak], "higher") == "partly"
    assert verdict([disagree, weak], "higher") == "contradicted"
    assert verdict([agree, disagree], "higher") == "mixed"
    assert verdict([weak, weak], "higher") == "inconclusive"
    assert verdict([disagree], "lower") == "reproduced"
    # Holm within a claim: two comparisons each at p = 0.03 are not both significant after correction
    three = [0.1, 0.2, 0.3]
    assert holm([compare([x + 1 for x in three], three)] * 2)[0].p_holm >= compare([x + 1 for x in three], three).p


def test_mixed_budgets_are_refused_naming_them(tmp_path):
    extra = {"run_id": "standard-s9", "spec": "t", "budget": "cpu", "status": "completed", "dataset": "mnist",
             "model": "lenet", "method": "standard", "seed": 9, "epochs": 10, "vii": 0.1}  # fmt: skip
    results = archive(tmp_path, [extra])
    with pytest.raises(ClaimError, match="claim fig3: mixes budgets \\(epochs: 5 on side a, 10, 5 on side b"):
        evaluate_claims(claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard")), results)


@pytest.mark.parametrize(
    "change, message",
    [
        (("archive: toy", "archive: nowhere"), "no archived sweep .*nowhere"),
        (("metric: vii", "metric: sharpness"), "no metric 'sharpness'"),
        (("b: {method: standard}", "b: {method: pgd}"), "no finished run in results/toy matches b={'method': 'pgd'}"),
        (("direction: higher", "direction: up"), "direction must be higher or lower"),
    ],
)
def test_a_claim_naming_what_is_not_there_is_refused(tmp_path, change, message):
    results = archive(tmp_path)
    text = CLAIM.format(metric="vii", direction="higher", b="standard").replace(*change)
    with pytest.raises(ClaimError, match=message):
        evaluate_claims(claims_file(tmp_path, text), results)


def test_the_cli_prints_the_verdict_table_and_exits_2_naming_a_bad_claim(tmp_path, capsys):
    from noisemod.cli import main

    results = archive(tmp_path)
    path = claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard"))
    assert main(["claims", str(path), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert (
        "| nm raises VII (vii) | paper | **reproduced** | mnist, lenet: 0.210 (n=5) vs 0.110 (n=5), diff +0.100" in out
    )
    bad = claims_file(tmp_path, CLAIM.format(metric="sharpness", direction="higher", b="standard"))
    assert main(["claims", str(bad), "--results", str(results)]) == 2
    assert "no metric 'sharpness'" in capsys.readouterr().err


PENDING_SPEC = """name: p
grids: [{dataset: [synthetic, digits], model: [lenet], method: [standard, nm], seed: [0, 1, 2, 3, 4]}]
budgets: {cpu: {epochs: 5}}
"""


def pending_archive(tmp_path, **extra) -> tuple:
    """The archive ``results/p`` of PENDING_SPEC's planned runs (nm's VII above standard's), with
    ``extra`` columns per run (a function of the run's VII), and its rows."""
    from noisemod.experiments.spec import expand, load_spec

    folder = tmp_path / "results" / "p"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(PENDING_SPEC)
    SweepDir(folder).write_sweep({"spec": "p", "budget": "cpu"})
    rows = []
    for r in expand(load_spec(folder / "spec.yaml"), "cpu"):
        vii = (NM if r.config.method == "nm" else STANDARD)[r.config.seed]
        rows.append(
            {"run_id": r.run_id, "status": "completed", "dataset": r.config.dataset, "model": "lenet",
             "method": r.config.method, "seed": r.config.seed, "epochs": 5, "test_accuracy": 0.9, "vii": vii,
             **{k: f(vii) for k, f in extra.items()}}
        )  # fmt: skip
    return folder, rows


def test_a_claim_is_pending_while_its_sweep_is_being_archived_and_complete_groups_are_shown(tmp_path):
    """An archive that lacks runs its spec plans for a claim's sides: the complete groups are compared,
    the verdict is 'pending' with the runs archived of those planned; once all are in, a verdict."""
    from noisemod.analysis.claims import verdict_table
    from noisemod.experiments.spec import expand, load_spec

    folder = tmp_path / "results" / "p"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(PENDING_SPEC)
    sweep = SweepDir(folder)
    sweep.write_sweep({"spec": "p", "budget": "cpu"})
    runs = expand(load_spec(folder / "spec.yaml"), "cpu")
    rows = [
        {"run_id": r.run_id, "spec": "p", "budget": "cpu", "status": "completed", "dataset": r.config.dataset,
         "model": "lenet", "method": r.config.method, "seed": r.config.seed, "epochs": 5, "test_accuracy": 0.9,
         "vii": (NM if r.config.method == "nm" else STANDARD)[r.config.seed]}
        for r in runs
    ]  # fmt: skip
    claim = claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard").replace("toy", "p"))
    write_archive(folder, rows[:-1])  # the last planned run (digits, nm, seed 4) is not archived yet
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (19, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]  # the complete group only
    assert "**pending** | synthetic, lenet: " in verdict_table([r]) and "19 of 20 runs archived" in verdict_table([r])
    write_archive(folder, rows)
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "reproduced" and r.runs is None and len(r.comparisons) == 2


def test_a_claim_over_a_list_of_archives_pools_their_runs_and_waits_for_each(tmp_path):
    """One spec run under two budgets into two archives (as protocol.yaml's tiers): a claim naming
    both compares every group of either, Holm over all of them, and is pending while one lacks runs."""
    spec = PENDING_SPEC.replace("budgets: {cpu: {epochs: 5}}", "budgets: {one: {only: {dataset: [synthetic]}}, "
                                "two: {only: {dataset: [digits]}}}")  # fmt: skip
    from noisemod.experiments.spec import expand, load_spec

    tiers = {}
    for budget in ("one", "two"):
        folder = tmp_path / "results" / f"p-{budget}"
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text(spec)
        SweepDir(folder).write_sweep({"spec": "p", "budget": budget})
        tiers[budget] = [
            {"run_id": r.run_id, "spec": "p", "budget": budget, "status": "completed", "dataset": r.config.dataset,
             "model": "lenet", "method": r.config.method, "seed": r.config.seed, "epochs": 50, "test_accuracy": 0.9,
             "vii": (NM if r.config.method == "nm" else STANDARD)[r.config.seed] + (budget == "two") * 0.001}
            for r in expand(load_spec(folder / "spec.yaml"), budget)
        ]  # fmt: skip
    text = CLAIM.format(metric="vii", direction="higher", b="standard").replace(
        "archive: toy", "archive: [p-one, p-two]"
    )
    claim = claims_file(tmp_path, text)
    write_archive(tmp_path / "results" / "p-one", tiers["one"])
    write_archive(tmp_path / "results" / "p-two", tiers["two"][:3])
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (13, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]
    write_archive(tmp_path / "results" / "p-two", tiers["two"])
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "reproduced" and [c["group"]["dataset"] for c in r.comparisons] == ["synthetic", "digits"]
    single = compare([v + 0.001 for v in NM], [v + 0.001 for v in STANDARD])
    assert r.comparisons[1]["comparison"].diff == pytest.approx(single.diff)
    assert r.comparisons[1]["comparison"].p_holm == pytest.approx(min(1.0, 2 * single.p))  # Holm over both groups
    bad = claims_file(tmp_path, text.replace("[p-one, p-two]", "[]"))
    with pytest.raises(ClaimError, match="archive must be an archive name or a non-empty list"):
        evaluate_claims(bad, tmp_path / "results")


def test_a_claim_on_an_archive_still_to_come_is_pending_only_where_planned_archives_declares_it(tmp_path, monkeypatch):
    """A claim declared before its sweep archived a run (protocol-tier3-pgd's): refused while the
    archive is missing, unless ``planned_archives`` names the bundled spec and budget that will make
    it; then pending, the runs counted from that plan; once archived, judged; an archive made under
    another budget, an unknown spec or budget are refused naming them."""
    from noisemod.experiments.spec import expand, load_spec

    spec = PENDING_SPEC.replace("budgets: {cpu: {epochs: 5}}", "budgets: {one: {only: {dataset: [synthetic]}}, "
                                "two: {only: {dataset: [digits]}}}")  # fmt: skip
    bundled = tmp_path / "specs"
    bundled.mkdir()
    (bundled / "p.yaml").write_text(spec)
    monkeypatch.setattr("noisemod.experiments.catalog.SPECS", bundled)
    tiers = {}
    for budget in ("one", "two"):
        tiers[budget] = [
            {"run_id": r.run_id, "spec": "p", "budget": budget, "status": "completed", "dataset": r.config.dataset,
             "model": "lenet", "method": r.config.method, "seed": r.config.seed, "epochs": 50, "test_accuracy": 0.9,
             "vii": (NM if r.config.method == "nm" else STANDARD)[r.config.seed]}
            for r in expand(load_spec(bundled / "p.yaml"), budget)
        ]  # fmt: skip
    one = tmp_path / "results" / "p-one"
    one.mkdir(parents=True)
    (one / "spec.yaml").write_text(spec)
    SweepDir(one).write_sweep({"spec": "p", "budget": "one"})
    write_archive(one, tiers["one"])
    text = CLAIM.format(metric="vii", direction="higher", b="standard").replace(
        "archive: toy", "archive: [p-one, p-two]"
    )
    with pytest.raises(ClaimError, match="no archived sweep .*p-two"):
        evaluate_claims(claims_file(tmp_path, text), tmp_path / "results")
    declared = RULES + "planned_archives: {p-two: {spec: p, budget: two}}\n" + text
    [r] = evaluate_claims(claims_file(tmp_path, declared), tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (10, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]
    two = tmp_path / "results" / "p-two"
    two.mkdir()
    (two / "spec.yaml").write_text(spec)
    SweepDir(two).write_sweep({"spec": "p", "budget": "two"})
    write_archive(two, tiers["two"])
    [r] = evaluate_claims(claims_file(tmp_path, declared), tmp_path / "results")
    assert r.verdict == "reproduced" and [c["group"]["dataset"] for c in r.comparisons] == ["synthetic", "digits"]
    wrong = declared.replace("budget: two}", "budget: one}")
    with pytest.raises(ClaimError, match="p-two was made under budget 'two', planned_archives says 'one'"):
        evaluate_claims(claims_file(tmp_path, wrong), tmp_path / "results")
    for bad, message in (("spec: q,", "planned_archives.p-two: no bundled spec 'q'"), ("budget: nine", "nine")):
        changed = declared.replace("spec: p," if "spec" in bad else "budget: two", bad)
        with pytest.raises(ClaimError, match=message):
            evaluate_claims(claims_file(tmp_path, changed), tmp_path / "results")


RESTATED = (
    CLAIM.format(metric="vii", direction="higher", b="standard")
    + """  - id: fig3-again
    title: nm raises VII at another budget
    archive: later
    metric: vii
    direction: higher
    a: {method: nm}
    b: {method: standard}
    by: [dataset, model]
    restates: fig3
"""
)


def test_a_restated_claim_is_set_beside_the_one_it_restates_group_by_group(tmp_path):
    """changes_table: both verdicts, each group's two comparisons with their outcomes, 'yes' where the
    outcome changed and '-' where a group is compared on one side only."""
    from noisemod.analysis.claims import changes_table, outcome

    results = archive(tmp_path)
    later = []
    for dataset, nm in (("mnist", STANDARD), ("fashion-mnist", NM)):  # mnist: nm no longer above standard
        for method, values in (("nm", nm), ("standard", STANDARD)):
            later += [
                {"run_id": f"{dataset}-{method}-s{s}", "status": "completed", "dataset": dataset, "model": "lenet",
                 "method": method, "seed": s, "epochs": 50, "test_accuracy": 0.9, "vii": v}
                for s, v in enumerate(values)
            ]  # fmt: skip
    write_archive(results / "later", later)
    before, now = evaluate_claims(claims_file(tmp_path, RESTATED), results)
    assert (before.verdict, now.verdict) == ("reproduced", "partly")
    assert outcome(before.comparisons[0]["comparison"], "higher") == "agrees"
    assert outcome(now.comparisons[0]["comparison"], "higher") == "not significant"
    lines = changes_table([before, now]).splitlines()
    assert lines[2].startswith("| fig3-again | fig3 | reproduced -> **partly** | mnist, lenet | +0.100 [")
    assert lines[2].endswith(": agrees | +0.000 [-0.012, +0.012], p 1.000: not significant | yes |")
    assert lines[3].startswith("|  |  |  | fashion-mnist, lenet | - | +0.100 [") and lines[3].endswith(": agrees |  |")
    assert len(lines) == 4
    assert outcome(now.comparisons[1]["comparison"], "lower") == "disagrees"


@pytest.mark.parametrize("target", ["fig9", "fig3-again"])
def test_a_claim_restating_what_is_not_another_claim_is_refused(tmp_path, target):
    text = RESTATED.replace("restates: fig3", f"restates: {target}")
    with pytest.raises(ClaimError, match=f"claim fig3-again: restates '{target}', which is not another claim"):
        evaluate_claims(claims_file(tmp_path, text), archive(tmp_path))


def test_a_claim_restating_another_question_is_refused_naming_what_differs(tmp_path):
    head, tail = RESTATED.split("  - id: fig3-again")
    text = head + "  - id: fig3-again" + tail.replace("direction: higher", "direction: lower")
    message = "claim fig3-again: restates 'fig3' with another direction \\('lower' against 'higher'\\)"
    with pytest.raises(ClaimError, match=message):
        evaluate_claims(claims_file(tmp_path, text), archive(tmp_path))


def test_a_run_trained_but_not_yet_interpreted_leaves_its_group_waiting(tmp_path):
    """A sweep paused between a run's training and its interpretation archives the run without its
    interpretability columns: a claim on such a column counts it as missing (pending, its group not
    compared), not as a budget of its own; a claim on a training column (vii) compares it."""
    folder, rows = pending_archive(tmp_path, gradient_alignment=lambda vii: vii)
    rows[-1]["gradient_alignment"] = None  # digits, nm, seed 4: trained, not interpreted yet
    write_archive(folder, rows)
    text = CLAIM.format(metric="gradient_alignment", direction="higher", b="standard").replace("toy", "p")
    [r] = evaluate_claims(claims_file(tmp_path, text), tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (19, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]
    [r] = evaluate_claims(claims_file(tmp_path, text.replace("gradient_alignment", "vii")), tmp_path / "results")
    assert r.verdict == "reproduced" and len(r.comparisons) == 2


# ----------------------------------------------------------------------------- the rule, completed


def test_non_inferiority_moves_a_by_the_margin_and_needs_one(tmp_path):
    """ "As high as" within margin m: ``a + m`` against ``b``. FGSM's mean is 0.22, nm's 0.21: nm is not
    lower by more than a margin of 0.1 (agrees), but a margin of 0.001 cannot tell (the spread)."""
    results = archive(tmp_path)
    fgsm = CLAIM.format(metric="vii", direction="higher", b="fgsm")
    text = fgsm + "    test: non-inferiority\n    margin: M\n"
    [r] = evaluate_claims(claims_file(tmp_path, text.replace("M", "0.1")), results)
    [c] = r.comparisons
    want = compare([v + 0.1 for v in NM], FGSM)
    assert c["comparison"].diff == pytest.approx(want.diff) and c["margin"] == 0.1 and r.verdict == "reproduced"
    assert "diff -0.010 [" in verdict_table([r]) and "against margin -0.1" in verdict_table([r])
    [r] = evaluate_claims(claims_file(tmp_path, text.replace("M", "0.001")), results)
    assert r.verdict == "inconclusive"
    for bad in (text.replace("    margin: M\n", ""), text.replace("M", "-1"), text.replace("M", "x")):
        with pytest.raises(ClaimError, match="claim fig3: a non-inferiority claim needs margin"):
            evaluate_claims(claims_file(tmp_path, bad), results)
    with pytest.raises(ClaimError, match="margin applies to test: non-inferiority only"):
        evaluate_claims(
            claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="fgsm") + "    margin: 1\n"), results
        )


def test_the_cli_exits_2_for_a_non_inferiority_claim_without_margin(tmp_path, capsys):
    from noisemod.cli import main

    results = archive(tmp_path)
    path = claims_file(
        tmp_path, CLAIM.format(metric="vii", direction="higher", b="fgsm") + "    test: non-inferiority\n"
    )
    assert main(["claims", str(path), "--results", str(results)]) == 2
    assert "claim fig3: a non-inferiority claim needs margin" in capsys.readouterr().err


def test_a_secondary_metric_is_shown_and_never_judged(tmp_path, capsys):
    from noisemod.cli import main

    results = archive(tmp_path)
    text = CLAIM.format(metric="vii", direction="higher", b="standard") + "    also: [test_accuracy]\n"
    [r] = evaluate_claims(claims_file(tmp_path, text), results)
    assert r.verdict == "reproduced" and r.comparisons[0]["also"]["test_accuracy"].diff == 0
    assert "; test_accuracy +0.000" in verdict_table([r]) and "(not judged)" in verdict_table([r])
    assert main(["claims", str(claims_file(tmp_path, text)), "--results", str(results), "--json"]) == 0
    [out] = json.loads(capsys.readouterr().out)  # the secondary comparisons are plain data too
    assert out["comparisons"][0]["also"]["test_accuracy"]["diff"] == 0
    with pytest.raises(ClaimError, match="also must be a list of other metrics"):
        evaluate_claims(claims_file(tmp_path, text.replace("[test_accuracy]", "[vii]")), results)


def test_an_adversarial_side_counts_only_with_robust_runs(tmp_path):
    """FGSM runs below the dataset's robust accuracy threshold are left out; with fewer than 3 left
    the group is not tested, and the verdict table says why."""
    robust = [0.9, 0.1, 0.9, 0.2, 0.9]
    results = archive(tmp_path)
    rows = SweepDir(results / "toy").read_results()
    for r in rows:
        if r["method"] == "fgsm":
            r["robust_accuracy"] = robust[r["seed"]]
    write_archive(results / "toy", rows)
    [r] = evaluate_claims(claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="fgsm")), results)
    assert r.comparisons[0]["b"].n == 3  # seeds 0, 2, 4
    rules = RULES.replace("mnist: 0.5,", "mnist: 0.95,")
    [r] = evaluate_claims(
        claims_file(tmp_path, rules + CLAIM.format(metric="vii", direction="higher", b="fgsm")), results
    )
    assert r.verdict == "not tested" and not r.comparisons
    assert "b not robust: 0 of 5 runs reach robust accuracy 0.95 at their radius" in verdict_table([r])


def test_a_metric_judges_only_where_its_validation_passed(tmp_path, capsys):
    """VII passes the toy validation; logit-sum's alignment (inverted) fails it: its claim is not
    tested, naming the failed check; a metric never measured by the validation, or no validation
    archive at all, is an error naming the command that validates it."""
    import shutil

    from noisemod.cli import main

    results = archive(tmp_path)
    rows = SweepDir(results / "toy").read_results()
    for r in rows:
        r["logit-sum_alignment"] = r["vii"]
        r["smoothgrad_vii"] = r["vii"]
    write_archive(results / "toy", rows)
    claim = CLAIM.format(metric="logit-sum_alignment", direction="higher", b="standard")
    [r] = evaluate_claims(claims_file(tmp_path, claim), results)
    assert r.verdict == "not tested"
    assert "logit-sum/alignment fails its validation on mnist (lenet: failed positive)" in verdict_table([r])
    path = claims_file(tmp_path, CLAIM.format(metric="smoothgrad_vii", direction="higher", b="standard"))
    assert main(["claims", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "smoothgrad_vii have no validation record" in err and "noisemod sweep validation" in err
    shutil.rmtree(results / "validation")
    path.write_text(RULES + CLAIM.format(metric="vii", direction="higher", b="standard"))
    assert main(["claims", str(path), "--results", str(results)]) == 2
    assert "vii have no validation record (no validation archive" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, where",
    [
        (("    metric: vii\n", "    metric: [vii\n"), "line 8, column 14: not valid YAML: expected ',' or ']'"),
        (("    a: {method: nm}\n", "    a: nm\n"), "line 3: claim fig3: a and b must be mappings of settings"),
        (("claims:\n", "claims: 3\nx:\n"), "line 2: expected a mapping with a non-empty list 'claims'"),
        (("    direction: higher\n", "    direction: [higher]\n"), "line 3: claim fig3: direction must be higher"),
        (("    metric: vii\n", "    metric: {vii: 1}\n"), "line 3: claim fig3: metric must be a text"),
    ],
)
def test_a_malformed_claims_file_exits_2_naming_the_file_and_the_line(tmp_path, capsys, change, where):
    from noisemod.cli import main

    results = archive(tmp_path)
    path = claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard").replace(*change))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated: verdicts -->\n<!-- end generated -->\n")
    for argv in (["claims", str(path)], ["docs", str(doc), "--claims", str(path)]):
        argv += ["--results", str(results)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"noisemod: error: {path}, {where}") and "Traceback" not in err, err


def test_the_rules_of_a_file_that_is_not_valid_yaml_are_an_error_naming_the_line(tmp_path):
    from noisemod.analysis.claims import load_rules

    path = claims_file(tmp_path, CLAIM.format(metric="[vii", direction="higher", b="standard"))
    with pytest.raises(ClaimError, match=r"line \d+, column \d+: not valid YAML"):
        load_rules(path)


def _score_yardsticks(results, skip=()):
    """Give each toy run a yardsticks.json whose chosen score yardstick holds its VII (the toy
    validation passes ``gradient/score_alignment@0.25`` only, so the rule chooses it)."""
    sweep = SweepDir(results / "toy")
    for r in sweep.read_results():
        if r["run_id"] not in skip:
            values = {"gradient/score_alignment@0.25": r["vii"], "gradient/alignment": r["vii"] / 2}
            sweep.run(r["run_id"]).write_yardsticks({"n": 10, "values": values})


def test_a_claim_on_the_chosen_score_alignment_is_judged_with_the_yardstick_the_validation_picks(tmp_path):
    results = archive(tmp_path)
    _score_yardsticks(results)
    path = claims_file(tmp_path, CLAIM.format(metric="chosen_score_alignment", direction="higher", b="standard"))
    [r] = evaluate_claims(path, results)
    assert r.claim["metric"] == "gradient/score_alignment@0.25" and r.verdict == "reproduced"
    assert r.comparisons[0]["a"].mean == pytest.approx(sum(NM) / 5)
    assert "(gradient/score_alignment@0.25)" in verdict_table([r])


def test_a_yardstick_named_as_a_claims_metric_reads_the_runs_yardsticks(tmp_path):
    results = archive(tmp_path)
    _score_yardsticks(results)
    [r] = evaluate_claims(
        claims_file(tmp_path, CLAIM.format(metric="gradient/alignment", direction="higher", b="standard")), results
    )
    assert r.verdict == "reproduced" and r.comparisons[0]["b"].mean == pytest.approx(sum(STANDARD) / 10)
    with pytest.raises(ClaimError, match="claim fig3: not a yardstick: 'gradient/nothing'"):
        evaluate_claims(
            claims_file(tmp_path, CLAIM.format(metric="gradient/nothing", direction="higher", b="standard")), results
        )


def test_a_chosen_score_claim_waits_for_runs_not_yet_scored_and_for_the_validation(tmp_path):
    """A run archived before the yardsticks were measured counts as missing (pending, as a run not yet
    interpreted); while the validation itself is incomplete the choice could change: pending, no comparison."""
    from types import SimpleNamespace

    from noisemod.analysis.claims import CHOSEN_SCORE, _evaluate_chosen

    folder, rows = pending_archive(tmp_path)
    write_archive(folder, rows)
    for r in rows[:-1]:  # digits, nm, seed 4: archived before its yardsticks were measured
        values = {"gradient/score_alignment@0.25": r["vii"]}
        SweepDir(folder).run(r["run_id"]).write_yardsticks({"n": 10, "values": values})
    text = CLAIM.format(metric=CHOSEN_SCORE, direction="higher", b="standard").replace("toy", "p")
    [r] = evaluate_claims(claims_file(tmp_path, text), tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (19, 20) and r.claim["metric"] == "gradient/score_alignment@0.25"
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]
    waiting = SimpleNamespace(pending={("mnist", "lenet"): (4, 5)})
    r = _evaluate_chosen({"id": "x", "metric": CHOSEN_SCORE}, tmp_path / "results", {}, waiting)
    assert r.verdict == "pending" and not r.comparisons
    assert "chosen once the validation is complete (mnist/lenet: 4 of 5 runs)" in r.untested[0]["untested"]

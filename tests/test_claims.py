"""Claims as data: verdicts computed from an archive by the written rule, and refused when they cannot be."""

import pytest
from test_validation import toy_archive as toy_validation

from noisemod.analysis.claims import ClaimError, evaluate_claims, verdict, verdict_table
from noisemod.analysis.stats import Comparison, compare, holm
from noisemod.rundir import SweepDir

NM = [0.20, 0.21, 0.22, 0.205, 0.215]
STANDARD = [0.10, 0.11, 0.12, 0.105, 0.115]
FGSM = [0.30, 0.18, 0.25, 0.22, 0.15]


def archive(root, extra=()):
    rows = []
    for method, values in (("nm", NM), ("standard", STANDARD), ("fgsm", FGSM)):
        for seed, v in enumerate(values):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "t", "budget": "cpu", "status": "completed", "dataset": "mnist",
                 "model": "lenet", "method": method, "seed": seed, "epochs": 5, "test_accuracy": 0.9, "vii": v,
                 "robust_accuracy": 0.9 if method == "fgsm" else None}
            )  # fmt: skip
    SweepDir(root / "results" / "toy").write_results(rows + list(extra))
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
    sweep.write_results(rows[:-1])  # the last planned run (digits, nm, seed 4) is not archived yet
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (19, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]  # the complete group only
    assert "**pending** | synthetic, lenet: " in verdict_table([r]) and "19 of 20 runs archived" in verdict_table([r])
    sweep.write_results(rows)
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
    SweepDir(tmp_path / "results" / "p-one").write_results(tiers["one"])
    SweepDir(tmp_path / "results" / "p-two").write_results(tiers["two"][:3])
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "pending" and r.runs == (13, 20)
    assert [c["group"]["dataset"] for c in r.comparisons] == ["synthetic"]
    SweepDir(tmp_path / "results" / "p-two").write_results(tiers["two"])
    [r] = evaluate_claims(claim, tmp_path / "results")
    assert r.verdict == "reproduced" and [c["group"]["dataset"] for c in r.comparisons] == ["synthetic", "digits"]
    single = compare([v + 0.001 for v in NM], [v + 0.001 for v in STANDARD])
    assert r.comparisons[1]["comparison"].diff == pytest.approx(single.diff)
    assert r.comparisons[1]["comparison"].p_holm == pytest.approx(min(1.0, 2 * single.p))  # Holm over both groups
    bad = claims_file(tmp_path, text.replace("[p-one, p-two]", "[]"))
    with pytest.raises(ClaimError, match="archive must be an archive name or a non-empty list"):
        evaluate_claims(bad, tmp_path / "results")


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
    SweepDir(results / "later").write_results(later)
    before, now = evaluate_claims(claims_file(tmp_path, RESTATED), results)
    assert (before.verdict, now.verdict) == ("reproduced", "partly")
    assert outcome(before.comparisons[0]["comparison"], "higher") == "agrees"
    assert outcome(now.comparisons[0]["comparison"], "higher") == "not significant"
    lines = changes_table([before, now]).splitlines()
    assert lines[2].startswith("| fig3-again | fig3 | reproduced -> **partly** | mnist, lenet | +0.100 [")
    assert lines[2].endswith(": agrees | +0.000 [-0.012, 0.012], p 1.000: not significant | yes |")
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
    from noisemod.experiments.spec import expand, load_spec

    folder = tmp_path / "results" / "p"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(PENDING_SPEC)
    SweepDir(folder).write_sweep({"spec": "p", "budget": "cpu"})
    rows = [
        {"run_id": r.run_id, "status": "completed", "dataset": r.config.dataset, "model": "lenet",
         "method": r.config.method, "seed": r.config.seed, "epochs": 5, "test_accuracy": 0.9,
         "vii": (NM if r.config.method == "nm" else STANDARD)[r.config.seed],
         "gradient_alignment": (NM if r.config.method == "nm" else STANDARD)[r.config.seed]}
        for r in expand(load_spec(folder / "spec.yaml"), "cpu")
    ]  # fmt: skip
    rows[-1]["gradient_alignment"] = None  # digits, nm, seed 4: trained, not interpreted yet
    SweepDir(folder).write_results(rows)
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


def test_a_secondary_metric_is_shown_and_never_judged(tmp_path):
    results = archive(tmp_path)
    text = CLAIM.format(metric="vii", direction="higher", b="standard") + "    also: [test_accuracy]\n"
    [r] = evaluate_claims(claims_file(tmp_path, text), results)
    assert r.verdict == "reproduced" and r.comparisons[0]["also"]["test_accuracy"].diff == 0
    assert "; test_accuracy +0.000" in verdict_table([r]) and "(not judged)" in verdict_table([r])
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
    SweepDir(results / "toy").write_results(rows)
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
    SweepDir(results / "toy").write_results(rows)
    claim = CLAIM.format(metric="logit-sum_alignment", direction="higher", b="standard")
    [r] = evaluate_claims(claims_file(tmp_path, claim), results)
    assert r.verdict == "not tested"
    assert "logit-sum/alignment fails its validation on mnist (lenet: failed positive)" in verdict_table([r])
    path = claims_file(tmp_path, CLAIM.format(metric="smoothgrad_vii", direction="higher", b="standard"))
    assert main(["claims", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "smoothgrad_vii have no validation record" in err and "noisemod sweep experiments/validation.yaml" in err
    shutil.rmtree(results / "validation")
    path.write_text(RULES + CLAIM.format(metric="vii", direction="higher", b="standard"))
    assert main(["claims", str(path), "--results", str(results)]) == 2
    assert "vii have no validation record (no validation archive" in capsys.readouterr().err

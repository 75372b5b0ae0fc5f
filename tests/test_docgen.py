"""Generated parts of the docs: computed from the archive, rewritten in place, and checked to be up to date."""

import json
from pathlib import Path

import pytest
from scipy import stats as scipy_stats
from test_claims import CLAIM, NM, STANDARD, _score_yardsticks, archive, claims_file, write_archive

from noisemod.analysis.claims import comparisons
from noisemod.analysis.docgen import DocError, Sources, check, regenerate, render
from noisemod.analysis.report import report_sections
from noisemod.analysis.tables import load_results
from noisemod.cli import main
from noisemod.rundir import SweepDir

REPO = Path(__file__).resolve().parents[1]

DOC = """# Results

Written by hand, kept as written.

<!-- generated: bottom-line -->
stale
<!-- end generated -->

<!-- generated: verdicts -->
<!-- end generated -->

<!-- generated: table toy -->
<!-- end generated -->

<!-- generated: archive -->
<!-- end generated -->
"""


@pytest.fixture
def sources(tmp_path):
    results = archive(tmp_path)
    claims = claims_file(tmp_path, CLAIM.format(metric="vii", direction="higher", b="standard"))
    return Sources(results=results, claims=claims)


def test_generated_parts_are_computed_from_the_archive_and_the_rest_is_kept(tmp_path, sources):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(DOC)
    stale = check([doc], sources, write=True)
    assert set(stale[doc]) == {"bottom-line", "verdicts", "table toy", "archive"}
    text = doc.read_text()
    assert "Written by hand, kept as written." in text and "stale" not in text
    assert "- nm raises VII: **reproduced** (1 of 1 comparisons agree, 0 disagree, 0 not significant" in text
    assert "| nm raises VII (vii) | paper | **reproduced** |" in text
    # the table: every condition with its seeds and mean ± std [95% CI] (the report's numbers)
    mean = sum(NM) / len(NM)
    assert f"| mnist | lenet | nm | 5 | 0.9000 ± 0.0000 [0.9000, 0.9000] | - | {mean:.4f} ± " in text
    assert "| `results/toy` | 15 |" in text  # its 15 run folders
    assert check([doc], sources, write=False) == {}  # regenerating again changes nothing

    doc.write_text(text.replace(f"{mean:.4f}", "0.9999"))  # a number typed over a generated one
    assert check([doc], sources, write=False) == {doc: ["table toy"]}
    assert "0.9999" in doc.read_text()  # --check writes nothing


def test_one_regeneration_judges_the_claims_once_however_many_parts_show_them(monkeypatch, sources):
    import noisemod.analysis.claims as claims

    calls = []
    real = claims.evaluate_claims
    monkeypatch.setattr(claims, "evaluate_claims", lambda *a: calls.append(a) or real(*a))
    text, stale = regenerate(DOC, sources)
    assert "**reproduced**" in text and "verdicts" in stale
    assert len(calls) == 1  # bottom-line and verdicts share one evaluation
    regenerate(DOC, Sources(results=sources.results, claims=sources.claims))
    assert len(calls) == 2  # a new regeneration reads the archives again


def test_one_regeneration_computes_the_validation_once_for_the_claims_and_the_parts(monkeypatch, sources):
    import noisemod.analysis.validation as validation

    calls = []
    real = validation.validate
    monkeypatch.setattr(validation, "validate", lambda *a: calls.append(a) or real(*a))
    text, _ = regenerate(DOC + "\n<!-- generated: validation -->\n<!-- end generated -->\n", sources)
    assert "**reproduced**" in text and "| `gradient/vii` | pass |" in text
    assert len(calls) == 1  # the verdicts judge with the validation the validation part shows


def test_a_part_that_cannot_be_made_is_an_error_naming_it(tmp_path, sources):
    with pytest.raises(DocError, match="unknown generated part 'tabel'"):
        regenerate("<!-- generated: tabel toy -->\n<!-- end generated -->", sources)
    with pytest.raises(DocError, match="no archived sweep .*missing-sweep"):
        regenerate("<!-- generated: table missing-sweep -->\n<!-- end generated -->", sources)
    with pytest.raises(DocError, match="names claims not in .*: nope"):
        regenerate("<!-- generated: bottom-line nope -->\n<!-- end generated -->", sources)


def test_the_docs_command_rewrites_checks_and_exits_2_on_a_bad_part(tmp_path, sources, capsys):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(DOC)
    where = ["--results", str(sources.results), "--claims", str(sources.claims)]
    assert main(["docs", str(doc), *where, "--check"]) == 1
    assert "out of date: bottom-line, verdicts, table toy, archive" in capsys.readouterr().out
    assert doc.read_text() == DOC
    assert main(["docs", str(doc), *where]) == 0
    assert main(["docs", str(doc), *where, "--check"]) == 0
    assert "every generated part is up to date" in capsys.readouterr().out
    doc.write_text("<!-- generated: table nowhere -->\n<!-- end generated -->\n")
    assert main(["docs", str(doc), *where]) == 2
    assert "no archived sweep" in capsys.readouterr().err and "nowhere" in doc.read_text()


def test_each_condition_is_compared_with_standard_training_like_scipy(tmp_path):
    results = archive(tmp_path)
    rows = report_sections(results / "toy")
    header, body = rows["comparisons"]
    assert header[:4] == ["dataset", "model", "condition", "metric"]
    compared = comparisons(load_results(results / "toy"), ["dataset", "model", "method"])
    found = {(r["condition"].split()[0], r["metric"]): r for r in compared}  # this toy table has no beta
    nm = found[("nm", "vii")]["comparison"]
    welch = scipy_stats.ttest_ind(NM, STANDARD, equal_var=False)
    assert nm["diff"] == pytest.approx(0.1) and nm["p_welch"] == pytest.approx(welch.pvalue)
    # Holm over the sweep's two vii comparisons (nm, fgsm): the smaller p doubled
    fgsm = found[("fgsm", "vii")]["comparison"]
    assert nm["p"] < fgsm["p"] and nm["p_holm"] == pytest.approx(min(1, 2 * nm["p"]))
    assert fgsm["p_holm"] == pytest.approx(max(nm["p_holm"], fgsm["p"]))
    assert ("standard", "vii") not in found  # the reference is not compared with itself
    assert any(row[2].startswith("nm") and row[3] == "vii" for row in body)
    statistics = rows["statistics"]
    assert json.loads(json.dumps(statistics))["comparisons"][0]["metric"] == "test_accuracy"


def test_the_shipped_docs_are_regenerated_from_the_archive():
    """README.md and every page of docs/ and docs/results/: every generated part as the archive in
    results/, the bundled claims file and the bundled specs make it today (`make docs` rewrites them)."""
    sources = Sources(results=REPO / "results")
    assert sources.claims == REPO / "src" / "noisemod" / "analysis" / "claims.yaml"
    docs = REPO / "docs"
    pages = [REPO / "README.md", *sorted(docs.glob("*.md")), *sorted((docs / "results").glob("*.md"))]
    assert check(pages, sources, write=False) == {}


def test_the_cost_table_prices_each_methods_vii_in_accuracy_and_time(tmp_path):
    rows = []
    for method, acc, vii, seconds in (
        ("standard", 0.95, 0.10, 10.0),
        ("nm", 0.94, 0.12, 11.0),
        ("pgd", 0.90, 0.20, 50.0),
    ):
        for seed, jitter in enumerate((-0.001, 0.0, 0.001)):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "cost", "budget": "cpu", "status": "completed",
                 "dataset": "mnist", "model": "lenet", "method": method, "seed": seed, "epochs": 3,
                 "test_accuracy": acc + jitter, "vii": vii + jitter, "train_seconds": seconds + 10 * jitter}
            )  # fmt: skip
    write_archive(tmp_path / "cost", rows)
    text = render("cost cost", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))
    lines = {line.split(" | ")[1].split()[0]: line for line in text.splitlines()[2:]}  # no beta in this toy
    assert set(lines) == {"nm", "pgd"}  # standard is the reference
    # nm: +0.020 VII for 1 accuracy point and 0.10x standard's time more
    assert "| 3 | +0.020 [" in lines["nm"] and "| +1.000 [" in lines["nm"]
    assert "| 1.10 | +0.0200 | +0.2000 |" in lines["nm"]
    assert "| 5.00 | +0.0200 | +0.0250 |" in lines["pgd"]  # +0.1 VII for 5 points and 4 more standard times
    rows = [dict(r, train_seconds=10.2 + 10 * (r["test_accuracy"] - 0.94)) if r["method"] == "nm" else r for r in rows]
    write_archive(tmp_path / "cost", rows)  # nm now 2% slower than standard: inside timing noise
    text = render("cost cost", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))
    assert "| 1.02 | +0.0200 | - (under 5%) |" in text


def test_a_table_lists_numeric_conditions_in_order_whatever_order_they_ran_in(tmp_path):
    rows = [
        {"run_id": f"b{beta}-s{seed}", "spec": "fig4", "budget": "cpu", "status": "completed", "dataset": "cifar10",
         "model": "fcnn", "method": "nm", "beta": beta, "seed": seed, "epochs": 3, "test_accuracy": 0.2, "vii": 0.1}
        for beta in (0.5, 1.0, 0.0) for seed in (0, 1)
    ]  # fmt: skip
    write_archive(tmp_path / "fig4", rows)
    text = render("table fig4", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))
    betas = [line.split(" | ")[3] for line in text.splitlines() if line.startswith("| cifar10 | fcnn | nm |")]
    assert betas == ["0", "0.5", "1"], text


def test_a_table_in_parts_is_narrower_and_folds_method_settings_into_one_condition(tmp_path):
    rows = [
        {"run_id": f"{method}-s{seed}", "spec": "p", "budget": "cpu", "status": "completed", "dataset": "mnist",
         "model": "lenet", "method": method, "seed": seed, "epochs": 3, "test_accuracy": 0.9, "vii": 0.1,
         "train_seconds": 10.0, **extra}
        for method, extra in (("standard", {}), ("fgsm", {"eps": 0.1, "robust_accuracy": 0.4,
                                                          "robust_accuracy_eps0.05": 0.7}))
        for seed in (0, 1)
    ]  # fmt: skip
    (tmp_path / "p").mkdir()
    info = {"spec": "p", "budget": "cpu", "command": "noisemod sweep p.yaml"}
    (tmp_path / "p" / "sweep.json").write_text(json.dumps(info))
    write_archive(tmp_path / "p", rows)
    sources = Sources(results=tmp_path, claims=tmp_path / "none.yaml")
    whole = render("table p", sources)
    assert "| dataset | model | method | eps | runs | test_accuracy | robust_accuracy | vii |" in whole
    text = render("table p command accuracy", sources)
    assert text.startswith("`noisemod sweep p.yaml`\n\nResults")
    assert "| dataset | model | condition | runs | test_accuracy | vii | train_seconds |" in text
    assert "| mnist | lenet | fgsm eps0.1 | 2 | 0.9000 ± 0.0000 [0.9000, 0.9000] |" in text
    text = render("table p robustness", sources)
    assert "| dataset | model | condition | runs | robust_accuracy | robust_accuracy_eps0.05 |" in text
    assert "fgsm eps0.1" in text and "standard" not in text  # a condition without a robust accuracy is left out
    with pytest.raises(DocError, match="'table' parts are command, accuracy"):
        render("table p accuracy widths", sources)


def test_the_correlation_part_ranks_runs_like_scipy_and_reads_the_robust_radii(tmp_path):
    vii = [0.10, 0.12, 0.11, 0.20, 0.18, 0.15]
    small = [0.60, 0.62, 0.70, 0.90, 0.85, 0.61]
    rows = [
        {"run_id": f"r{i}", "spec": "cost", "budget": "cpu", "status": "completed", "dataset": "mnist",
         "model": "lenet", "method": "nm", "seed": i, "epochs": 3, "test_accuracy": 0.9, "vii": v,
         "robust_accuracy_eps0.1": s, "robust_accuracy_eps0.3": 0.0}
        for i, (v, s) in enumerate(zip(vii, small))
    ]  # fmt: skip
    write_archive(tmp_path / "cost", rows)
    sources = Sources(results=tmp_path, claims=tmp_path / "none.yaml")
    text = render("correlation cost vii robust@small", sources)
    rho = scipy_stats.spearmanr(vii, small).statistic
    assert f"| mnist, lenet | 6 | nm | {rho:+.2f} [" in text
    with pytest.raises(DocError, match="no runs in results/cost have both vii and gradient_vii"):
        render("correlation cost vii gradient_vii", sources)
    write_archive(tmp_path / "cost", rows[:2])  # an archive being filled: no rank correlation of 2 runs
    assert render("correlation cost vii robust@small", sources).startswith("(not yet: 2 run(s) with both")


NM_SETTINGS = {"beta": 0.5, "noise": "gaussian", "modulate_after_norm": False, "fused_noise": False}


def test_the_training_part_follows_vii_per_epoch_and_finds_nms_largest_lead(tmp_path):
    """val_vii per epoch from each run's metrics.csv: mean ± std per method, nm - standard with Welch's
    interval (scipy) and the epoch of its largest lead; a run without the column is left out."""
    from noisemod.analysis.figures import training

    lead = {1: 0.0, 2: 0.05, 3: 0.02}  # nm's lead per epoch: largest at epoch 2
    rows = []
    sweep = SweepDir(tmp_path / "curves")
    for method in ("standard", "nm"):
        for seed in range(3):
            run_id = f"{method}-s{seed}"
            rows.append({"run_id": run_id, "spec": "p", "budget": "cpu", "status": "completed", "dataset": "mnist",
                         "model": "lenet", "method": method, "seed": seed, "epochs": 3, "test_accuracy": 0.9,
                         "vii": 0.1, **NM_SETTINGS})  # fmt: skip
            metrics = [
                {"epoch": e, "train_loss": 1.0, "train_accuracy": 0.5, "val_accuracy": 0.5 + 0.1 * e, "seconds": 1,
                 "samples_per_s": 1, "lr": 0.001, "val_vii": 0.1 + 0.01 * seed + (lead[e] if method == "nm" else 0)}
                for e in (1, 2, 3)
            ]  # fmt: skip
            sweep.run(run_id).path.mkdir(parents=True)
            sweep.run(run_id).write_metrics(metrics)
    old = "standard-s9"  # a run from before val_vii: no column, left out
    rows.append({**rows[0], "run_id": old, "seed": 9})
    sweep.run(old).path.mkdir(parents=True)
    sweep.run(old).write_metrics([{"epoch": 1, "train_loss": 1, "train_accuracy": 0.5, "val_accuracy": 0.5,
                                   "seconds": 1, "samples_per_s": 1, "lr": 0.001}])  # fmt: skip
    write_archive(sweep.path, rows)
    text = render("training curves", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))
    assert "| epoch | standard | nm b0.5 gaussian | nm b0.5 gaussian - standard [95% CI] | p |" in text
    assert "| 1 | 0.110 ± 0.010 | 0.110 ± 0.010 | +0.000" in text
    nm, standard = [0.15, 0.16, 0.17], [0.10, 0.11, 0.12]
    low, high = scipy_stats.ttest_ind(nm, standard, equal_var=False).confidence_interval()
    p = max(scipy_stats.ttest_ind(nm, standard, equal_var=False).pvalue, 0.1)  # exact permutation p of 3 v 3: 0.1
    assert (
        f"| 2 (nm's largest lead) | 0.110 ± 0.010 | 0.160 ± 0.010 | +0.050 [{low:+.3f}, {high:+.3f}] | {p:.3g} |"
        in text
    )
    assert "| 3 |" in text and "(n=" not in text
    written = training(load_results(sweep.path), sweep.path, tmp_path / "t.png")
    assert written[0].stat().st_size > 10_000
    with pytest.raises(ValueError, match="val_vii"):
        training([rows[-1]], sweep.path, tmp_path / "none.png")


def test_the_randomization_part_tables_the_top_and_the_full_cascade_per_method(tmp_path):
    sweep = SweepDir(tmp_path / "rand")
    rows = []
    for method, top in (("standard", [0.5, 0.7]), ("nm", [0.1, 0.3])):
        for seed, t in enumerate(top):
            run_id = f"{method}-s{seed}"
            rows.append({"run_id": run_id, "spec": "p", "budget": "cpu", "status": "completed", "dataset": "mnist",
                         "model": "lenet", "method": method, "seed": seed, "epochs": 3, "test_accuracy": 0.9,
                         "vii": 0.1, **(NM_SETTINGS if method == "nm" else {})})  # fmt: skip
            run = sweep.run(run_id)
            run.path.mkdir(parents=True)
            run.write_interpretability(
                run.cascading_key("gradient", False), {"n": 5, "layers": [["fc3", t], ["c1", 0.0]]}
            )
            if method == "standard":  # the absolute test on standard only
                run.write_interpretability(run.cascading_key("gradient", True), {"n": 5, "layers": [["fc3", 0.9]]})
    write_archive(sweep.path, rows)
    text = render("randomization rand", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))
    assert "| mnist, lenet | standard | 2 | 0.600 ± 0.141 | 0.000 ± 0.000 | 0.900 ± 0.000 | 0.900 ± 0.000 |" in text
    assert "| mnist, lenet | nm b0.5 gaussian | 2 | 0.200 ± 0.141 | 0.000 ± 0.000 | - | - |" in text
    write_archive(tmp_path / "empty", rows[:1])  # a run without the test, in another archive
    with pytest.raises(DocError, match="no run of .* has a cascading randomization test"):
        render("randomization empty", Sources(results=tmp_path, claims=tmp_path / "none.yaml"))


def test_the_versus_table_sets_every_method_against_one_with_holm_over_the_archive(tmp_path):
    from noisemod.analysis.stats import compare

    values = {  # method: (accuracy, vii, floor, seconds), per seed a jitter
        "standard": (0.99, 0.040, 0.030, 10.0),
        "nm": (0.98, 0.055, 0.031, 12.0),
        "additive-noise": (0.985, 0.045, 0.029, 11.0),
    }
    jitters = (-0.002, 0.0, 0.003, 0.001)
    rows = []
    for method, (acc, vii, floor, seconds) in values.items():
        extra = NM_SETTINGS if method == "nm" else {"sigma": 0.5} if method == "additive-noise" else {}
        for seed, j in enumerate(jitters):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "p", "budget": "tier1", "status": "completed",
                 "dataset": "mnist", "model": "lenet", "method": method, "seed": seed, "epochs": 50, **extra,
                 "test_accuracy": acc + j, "vii": vii + j * (1 + seed), "gradient_vii_floor": floor,
                 "train_seconds": seconds}
            )  # fmt: skip
    write_archive(tmp_path / "p", rows)
    sources = Sources(results=tmp_path, claims=tmp_path / "none.yaml")
    text = render("versus p nm", sources)
    assert text.startswith("mnist, lenet:\n\n| method | seeds |")  # one table per dataset and model
    lines = {line.split(" | ")[0][2:]: line for line in text.splitlines()[4:]}
    assert list(lines) == ["standard", "nm b0.5 gaussian", "additive-noise sigma0.5"]
    assert "| (reference) |" in lines["nm b0.5 gaussian"] and "| 1.20 |" in lines["nm b0.5 gaussian"]
    assert "| 0.0290 | 1.10 |" in lines["additive-noise sigma0.5"]  # the floor and the time against standard's

    def side(method):
        return [r["vii"] for r in rows if r["method"] == method]

    # nm - method, Holm over the two comparisons of the archive (the larger p of Welch and permutation)
    ps = {m: compare(side(m), side("nm")).p for m in ("standard", "additive-noise")}
    low, high = sorted(ps.values())
    holm = {m: (2 * low if p == low else max(2 * low, high)) for m, p in ps.items()}
    for method, label in (("standard", "standard"), ("additive-noise", "additive-noise sigma0.5")):
        c = compare(side("nm"), side(method))
        cells = lines[label].split(" | ")
        assert cells[6] == f"{c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        assert cells[7] == f"{min(1.0, holm[method]):.3g}"
    with pytest.raises(DocError, match="unknown method 'nn'"):
        render("versus p nn", sources)
    # a method with no run archived yet: every method's row, no differences
    text = render("versus p pgd", sources)
    assert len(text.splitlines()) == 7 and all(line.endswith("| - | - | - | - |") for line in text.splitlines()[4:])
    # two nm conditions: no single reference, so no comparison rather than a pooled one
    rows += [dict(r, run_id=r["run_id"] + "b", beta=0.25) for r in rows if r["method"] == "nm"]
    write_archive(tmp_path / "p", rows)
    text = render("versus p nm", sources)
    assert "| - | - | - | - |" in text.splitlines()[4]


def test_the_validation_part_and_the_answer_part(tmp_path, sources):
    """``validation``: per group the yardsticks that pass, fail or wait and the claims' yardsticks;
    ``answer``: refuses a claims file without the claims it is computed from."""
    doc = tmp_path / "V.md"
    doc.write_text("<!-- generated: validation -->\n<!-- end generated -->\n")
    check([doc], sources, write=True)
    text = doc.read_text()
    assert "| `gradient/vii` | pass | pass | pass | pass |" in text
    assert "The score alignment chosen by the declared rule: `gradient/score_alignment@0.25`." in text
    doc.write_text("<!-- generated: answer toy mnist lenet -->\n<!-- end generated -->\n")
    with pytest.raises(DocError, match="'answer' needs the claims protocol-nm-vii"):
        check([doc], sources, write=True)


def test_the_score_table_shows_the_chosen_score_alignment_and_its_floor_per_condition(tmp_path, sources):
    """``table ARCHIVE score``: the yardstick the validation chose, from each run's yardsticks.json,
    mean ± std [95% CI] over the runs that measured it (scipy's t interval), its floor beside it."""
    assert render("table toy score", sources).startswith("(no run of ")
    _score_yardsticks(sources.results, skip={"nm-s4"})
    sweep = SweepDir(sources.results / "toy")
    for r in sweep.read_results():
        entry = sweep.run(r["run_id"]).read_yardsticks()
        if entry:
            entry["values"]["gradient/score_alignment@0.25_floor"] = 0.01
            sweep.run(r["run_id"]).write_yardsticks(entry)
    text = render("table toy score", Sources(results=sources.results, claims=sources.claims))
    assert text.startswith("The chosen score alignment, `gradient/score_alignment@0.25`, on the first 10 test images")
    nm = NM[:4]
    mean, sem = sum(nm) / 4, scipy_stats.sem(nm)
    low, high = scipy_stats.t.interval(0.95, 3, loc=mean, scale=sem)
    std = scipy_stats.tstd(nm)
    row = f"| mnist | lenet | nm b0.5 gaussian | 4 | {mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}] [floor 0.0100] |"
    assert row in text
    assert "| mnist | lenet | standard | 5 |" in text


@pytest.mark.parametrize(
    "verdicts, word",
    [
        (("reproduced", "reproduced", "reproduced", "reproduced"), "**Yes**"),
        (("pending", "reproduced", "reproduced", "reproduced"), "**Not answered yet**"),
        (("not tested", "not tested", "reproduced", "reproduced"), "**Not answered: the interpretability claims'"),
        (("inconclusive", "reproduced", "reproduced", "reproduced"), "**No**"),
        (("reproduced", "contradicted", "reproduced", "reproduced"), "**No**"),
        (("reproduced", "inconclusive", "partly", "reproduced"), "**Partly**"),
    ],
)
def test_the_answer_word_follows_the_written_rule(monkeypatch, sources, verdicts, word):
    """A metric that failed its validation leaves the question not answered, never answered "no"."""
    from types import SimpleNamespace

    from noisemod.analysis import docgen

    claims = zip(docgen.ANSWER_CLAIMS, verdicts)
    fake = [SimpleNamespace(claim={"id": c, "metric": "vii"}, verdict=v) for c, v in claims]
    monkeypatch.setattr(docgen, "_claims", lambda _: fake)
    monkeypatch.setattr(docgen, "_answer_numbers", lambda *_: ["numbers"])
    text = docgen._answer(sources, ["toy", "mnist", "lenet"])
    assert text.splitlines()[1].startswith(word)
    assert text.splitlines()[2].startswith("Judged on vii (`gradient/vii`) where it passed its validation: ")


def test_the_answers_numbers_each_carry_their_interval(tmp_path):
    """The answer's lines: differences with Welch's interval and p, the training time as a ratio of
    means with its log-scale interval, the robust accuracy at the small radius as a mean with its t
    interval, and the number of seeds counted from the archive."""
    from noisemod.analysis import docgen
    from noisemod.analysis.stats import compare, ratio, summarize

    rows = []
    for method, vii, seconds, robust in (
        ("standard", 0.10, 100.0, 0.05),
        ("nm", 0.12, 98.0, 0.02),
        ("additive-noise", 0.20, 99.0, 0.10),
        ("fgsm", 0.25, 140.0, 0.80),
    ):
        for seed, j in enumerate((-0.003, 0.0, 0.001, 0.004)):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "p", "budget": "tier1", "status": "completed",
                 "dataset": "mnist", "model": "lenet", "method": method, "seed": seed, "epochs": 50,
                 "test_accuracy": 0.99 - j, "vii": vii + j, "gradient_alignment": vii + 2 * j,
                 "train_seconds": seconds * (1 + 10 * j), "robust_accuracy_eps0.1": robust + j}
            )  # fmt: skip
    write_archive(tmp_path / "p", rows)
    lines = docgen._answer_numbers(Sources(results=tmp_path, claims=tmp_path / "none.yaml"), "p", "mnist", "lenet")

    def side(method, column):
        return [r[column] for r in rows if r["method"] == method]

    assert lines[0].startswith("On lenet on mnist, `results/p`, 4 seeds;")
    c = compare(side("nm", "vii"), side("additive-noise", "vii"))
    assert f"over additive noise: {c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]" in lines[1]
    t = ratio(side("nm", "train_seconds"), side("fgsm", "train_seconds"))
    assert t.ci_low < t.ratio < t.ci_high
    assert f"{t.ratio:.2f}x [{t.ci_low:.2f}, {t.ci_high:.2f}] FGSM-RS's" in lines[4]
    s = summarize(side("fgsm", "robust_accuracy_eps0.1"))
    assert lines[5].endswith(f"FGSM-RS {s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]")


def test_the_budgets_part_says_what_each_budget_of_a_spec_expands_to(tmp_path):
    """From the bundled spec's own expansion: tier3-pgd is LeNet with PGD on MNIST's whole training
    split, 5 seeds at 50 epochs; protocol's cpu budget trains 10,000 images for 5 epochs, seed 0."""
    text = render("budgets protocol", Sources(results=tmp_path))
    assert "| `protocol` | `tier3-pgd` | 5 | 0-4 | 50 | mnist all | lenet |" in text
    assert "| `protocol` | `cpu` | 29 | 0 | 5 | mnist 10,000; fashion-mnist 10,000 | lenet, mlp |" in text
    assert "`fig4`" not in text and "`fig4`" in render("budgets", Sources(results=tmp_path))
    with pytest.raises(DocError, match="no bundled spec nope"):
        render("budgets nope", Sources(results=tmp_path))

"""The results archive: a finished sweep copied into results/NAME without checkpoints, all or nothing."""

import csv
import filecmp
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from noisemod.cli import main
from noisemod.experiments import run_sweep
from noisemod.experiments.archive import (
    ARCHIVED_FILES,
    SPEC,
    ArchiveError,
    archive_sweep,
    restore_runs,
    verify_archive,
)
from noisemod.rundir import SweepDir

TINY = """name: tiny
description: two one-epoch runs on synthetic data
grids: [{dataset: [synthetic], model: [mlp], method: [standard, nm]}]
budgets: {paper: {epochs: 1, tensorboard: false}}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-run sweep (never modified: tests copy it)."""
    root = tmp_path_factory.mktemp("archive")
    (root / "tiny.yaml").write_text(TINY)
    records = run_sweep(root / "tiny.yaml", root / "sweep", log=lambda *_: None)
    assert [r["status"] for r in records] == ["completed", "completed"]
    return root / "sweep"


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_an_archive_holds_the_results_without_checkpoints_and_is_idempotent(finished, tmp_path):
    summary = archive_sweep(finished, tmp_path / "results" / "tiny")
    dest = tmp_path / "results" / "tiny"
    assert summary.archived == ["synthetic-mlp-standard-s0", "synthetic-mlp-nm-b0.5-gaussian-s0"]
    assert summary.pending == [] and summary.bytes == sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    files = tree(dest)
    assert {SPEC, "sweep.json", "results.csv"} <= set(files)
    for run_id in summary.archived:
        assert {f"runs/{run_id}/{name}" for name in ARCHIVED_FILES[:3]} <= set(files)
    assert not [f for f in files if f.endswith((".pt", ".png")) or "tensorboard" in f]
    assert (dest / SPEC).read_text() == TINY
    first = {f: (dest / f).read_bytes() for f in files}
    archive_sweep(finished, dest)  # again: the same files, nothing left beside them
    assert {f: (dest / f).read_bytes() for f in tree(dest)} == first
    assert [p.name for p in dest.parent.iterdir()] == ["tiny"]


def test_an_unfinished_or_corrupt_run_is_refused_naming_it_and_nothing_is_written(finished, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    run = sweep / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0"
    (run / "result.json").unlink()
    with pytest.raises(ArchiveError, match="run synthetic-mlp-nm-b0.5-gaussian-s0 is not finished"):
        archive_sweep(sweep, tmp_path / "out")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["sweep"]
    partial = archive_sweep(sweep, tmp_path / "out", partial=True)  # a sweep still running: its finished runs
    assert partial.archived == ["synthetic-mlp-standard-s0"] and partial.pending == [run.name]
    assert {r.split("/")[1] for r in tree(tmp_path / "out") if r.startswith("runs/")} == {"synthetic-mlp-standard-s0"}
    before = {f: (tmp_path / "out" / f).read_bytes() for f in tree(tmp_path / "out")}
    (sweep / "runs" / "synthetic-mlp-standard-s0" / "metrics.csv").write_text("epoch,train_loss\n1,abc\n")
    with pytest.raises(ArchiveError, match="cannot archive run synthetic-mlp-standard-s0: .*metrics.csv"):
        archive_sweep(sweep, tmp_path / "out", partial=True)
    assert {f: (tmp_path / "out" / f).read_bytes() for f in tree(tmp_path / "out")} == before  # the old archive


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="is not a sweep folder: .*sweep.json is missing"):
        archive_sweep(tmp_path, tmp_path / "out")


def test_restored_runs_are_skipped_by_the_sweep_on_another_machine(finished, tmp_path, monkeypatch):
    archive_sweep(finished, tmp_path / "archive")
    fresh = tmp_path / "new-machine"
    assert restore_runs(tmp_path / "archive", fresh) == sorted(
        ["synthetic-mlp-standard-s0", "synthetic-mlp-nm-b0.5-gaussian-s0"]
    )
    assert restore_runs(tmp_path / "archive", fresh) == []  # nothing twice
    for run in (fresh / "runs").iterdir():
        assert filecmp.cmp(run / "result.json", finished / "runs" / run.name / "result.json", shallow=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("an archived run was trained again"))
    spec = finished.parent / "tiny.yaml"
    records = run_sweep(spec, fresh, log=lambda *_: None)
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    original = json.loads((finished / "runs" / "synthetic-mlp-standard-s0" / "result.json").read_text())
    [row] = [r for r in SweepDir(fresh).read_results() if r["run_id"] == "synthetic-mlp-standard-s0"]
    assert row["test_accuracy"] == original["test_accuracy"] and row["vii"] == original["vii"]


def test_a_sweep_archives_as_runs_finish_and_a_new_machine_resumes_from_the_archive(finished, tmp_path, monkeypatch):
    spec, sweep, store = finished.parent / "tiny.yaml", tmp_path / "sweep", tmp_path / "results" / "tiny"
    shutil.copytree(finished, sweep)
    shutil.rmtree(sweep / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0")  # one run left to train
    lines = []
    records = run_sweep(spec, sweep, archive=store, log=lines.append)
    assert [r["status"] for r in records] == ["skipped", "completed"]
    assert sorted(p.name for p in (store / "runs").iterdir()) == [
        "synthetic-mlp-nm-b0.5-gaussian-s0",
        "synthetic-mlp-standard-s0",
    ]
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("an archived run was trained again"))
    records = run_sweep(spec, tmp_path / "new-machine", archive=store, log=lines.append)
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    assert any("restored the finished runs archived in" in line for line in lines)


def test_archived_runs_are_trained_again_when_the_spec_asks_what_their_weights_are_needed_for(finished, tmp_path):
    """A spec that now asks for measurements (here robustness) that its archived runs lack: the
    archive kept no weights, so the sweep trains those runs again and the archive gains the
    measurements; while a run is trained again the archive keeps its finished copy."""
    from noisemod.rundir import RunDir

    spec, store = tmp_path / "tiny.yaml", tmp_path / "results" / "tiny"
    archive_sweep(finished, store)
    spec.write_text(TINY + "robustness: {images: 50, only: {method: [standard]}}\n")
    lines = []
    # a dry run says what the sweep will do with the archived runs, and writes nothing
    planned = run_sweep(spec, tmp_path / "new-machine", archive=store, dry_run=True, log=lines.append)
    assert [(r["action"], r.get("archived")) for r in planned] == [("retrain", True), ("skip", True)]
    assert "1 to run, 0 finished to interpret, executor local; 2 restored from the archive first" in lines[0]
    assert lines[1].startswith("  retrain synthetic-mlp-standard-s0 (archived): ")
    assert not (tmp_path / "new-machine").exists()
    records = run_sweep(spec, tmp_path / "new-machine", archive=store, log=lines.append)
    assert [(r["run_id"], r["action"], r["status"]) for r in records] == [
        ("synthetic-mlp-standard-s0", "retrain", "completed"),
        ("synthetic-mlp-nm-b0.5-gaussian-s0", "skip", "skipped"),  # asks nothing new
    ]
    assert any("start synthetic-mlp-standard-s0 (again: archived without the weights" in line for line in lines)
    assert RunDir(store / "runs" / "synthetic-mlp-standard-s0").read_robustness()
    verify_archive(store)
    # a run being trained again (outputs cleared, not finished): the archive keeps its finished copy
    sweep = tmp_path / "new-machine"
    before = (store / "runs" / "synthetic-mlp-standard-s0" / "result.json").read_text()
    RunDir(sweep / "runs" / "synthetic-mlp-standard-s0").clear_outputs()
    assert RunDir(sweep / "runs" / "synthetic-mlp-standard-s0").status() == "new"
    summary = archive_sweep(sweep, store, partial=True)
    assert summary.pending == ["synthetic-mlp-standard-s0"]
    assert (store / "runs" / "synthetic-mlp-standard-s0" / "result.json").read_text() == before
    assert verify_archive(store) == 2


def test_a_sweep_records_where_each_runs_time_goes_and_the_archive_keeps_it(finished, tmp_path):
    """timings.json: the training process and each measurement after it, wall seconds (process start
    included); metrics.csv: each epoch's checks; the ``time`` part of the docs tables them."""
    from noisemod.analysis.docgen import Sources, render
    from noisemod.analysis.tables import TIME_STEPS, time_steps
    from noisemod.experiments.task import step_of
    from noisemod.rundir import RunDir

    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY + "robustness: {images: 20, only: {method: [standard]}}\n")
    run_sweep(spec, sweep, log=lambda *_: None)
    run = RunDir(sweep / "runs" / "synthetic-mlp-standard-s0")
    timings = run.read_timings()
    assert set(timings) == {"train", "robustness"} and all(v > 0 for v in timings.values())
    assert set(RunDir(sweep / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0").read_timings()) == {"train"}
    assert all(m["end_seconds"] > 0 for m in run.read_metrics())
    [row] = [r for r in SweepDir(sweep).read_results() if r["run_id"] == run.path.name]
    steps = time_steps(sweep, row)
    assert steps["total"] == pytest.approx(sum(steps[k] for k in TIME_STEPS))
    assert steps["robustness"] == timings["robustness"] and steps["yardsticks"] == 0
    assert steps["total"] == pytest.approx(timings["train"] + timings["robustness"])
    # resumed after a stop: timings.json has the last training process only, the epochs count all
    run.file(run.TIMINGS).write_text(json.dumps({**timings, "train": steps["epochs"] / 2}))
    resumed = time_steps(sweep, row)
    assert resumed["final evaluation"] == 0 and resumed["total"] == pytest.approx(sum(resumed[k] for k in TIME_STEPS))
    assert resumed["total"] >= steps["epochs"] + timings["robustness"]
    run.file(run.TIMINGS).write_text(json.dumps(timings))
    archive_sweep(sweep, tmp_path / "results" / "tiny")
    assert (tmp_path / "results" / "tiny" / "runs" / run.path.name / "timings.json").is_file()
    text = render("time tiny", Sources(results=tmp_path / "results"))
    assert "| synthetic, mlp | standard | 1 |" in text and text.count("\n|") == 4  # header, rule, two runs
    assert [
        step_of(c)
        for c in (["py", "-m", "noisemod", "train"], ["py", "-m", "noisemod", "evaluate", "r", "--cascading"])
    ] == ["train", "randomization"]


def test_the_time_part_says_what_is_left_to_train_and_how_long_by_the_archived_timings(finished, tmp_path):
    """An archive still being filled: the runs its spec plans that it lacks, each priced at the mean
    total of the timed runs of its dataset, model and method, else of its dataset and model; the
    sweep's recorded --jobs divides; a dataset and model without a timed run is named instead."""
    from noisemod.analysis.docgen import Sources, render
    from noisemod.analysis.tables import time_left, time_steps
    from noisemod.rundir import RunDir

    store = tmp_path / "results" / "tiny"
    archive_sweep(finished, store)
    standard, nm = "synthetic-mlp-standard-s0", "synthetic-mlp-nm-b0.5-gaussian-s0"
    RunDir(store / "runs" / standard).add_timing("train", 5400.0)
    shutil.rmtree(store / "runs" / nm)
    info = json.loads((store / "sweep.json").read_text())
    (store / "sweep.json").write_text(json.dumps({**info, "command": info["command"].replace("--jobs 1", "--jobs 2")}))
    sweep = SweepDir(store)
    sweep.write_results([r for r in sweep.read_results(completed_only=False) if r["run_id"] == standard])
    [row] = sweep.read_results()
    total = time_steps(store, row)["total"]
    left = time_left(store)
    assert (left["planned"], left["left"], left["timed"], left["jobs"]) == (2, [nm], [nm], 2)
    assert left["hours"] == pytest.approx(total / 3600)  # nm has no timed run: standard's, same dataset and model
    assert time_left(store, [(row, {"total": 2 * total})])["hours"] == pytest.approx(2 * total / 3600)  # read once
    text = render("time tiny", Sources(results=tmp_path / "results"))
    assert "Still to train: 1 of the 2 runs planned." in text
    assert "| synthetic, mlp | standard | 1 of 1 |" in text and "| synthetic, mlp | nm b0.5 gaussian | 0 of 1 |" in text
    assert f"about {total / 3600:.1f} hours of one core, {total / 7200:.1f} hours at the 2 runs at a time" in text
    assert "claims" not in text  # no claim reads this archive
    # a claim that reads it: the runs it waits for, their time, and the --limit that reaches them first
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "claims:\n  - {id: c, title: t, archive: tiny, metric: vii, direction: higher, a: {method: nm}, "
        "b: {method: standard}}\n"
    )
    sources = Sources(results=tmp_path / "results", claims=claims)
    assert (
        f"1 claim on this archive waits for 1 of them (1 timed: about {total / 3600:.1f} hours of one core, "
        f"{total / 7200:.1f} hours at the 2 runs at a time of the sweep's command)."  # the last run: no --limit
    ) in render("time tiny", sources)
    # runs the claims read before others in the spec's order: the --limit that reaches them first
    from noisemod.analysis.docgen import _claims_left

    order = [standard, "other-s0", nm, "other-s1"]
    left = {"left": order[1:], "order": order, "seconds": {}, "planned": 4, "jobs": 1}
    assert _claims_left(sources, "tiny", left) == (
        " 1 claim on this archive waits for 1 of them; `--limit 3` works on them first (and on 1 more)."
    )
    claims.write_text(claims.read_text().replace("a: {method: nm}", "a: {method: standard}"))  # standard is done
    assert "claims" not in render("time tiny", Sources(results=tmp_path / "results", claims=claims))
    RunDir(store / "runs" / standard).file(RunDir.TIMINGS).unlink()
    assert time_left(store)["untimed"] == [("synthetic", "mlp")]
    archive_sweep(finished, store)  # every run archived: nothing left, no sentence
    RunDir(store / "runs" / standard).add_timing("train", 10.0)
    assert time_left(store)["left"] == [] and "Still to train" not in render(
        "time tiny", Sources(results=tmp_path / "results")
    )


def test_a_setting_added_since_a_run_was_written_verifies_at_its_default_only(finished, tmp_path):
    """A run restored from an older archive has no shuffle_labels in its config.json, while the sweep
    that skipped it wrote the default into results.csv: that verifies; any other value does not."""
    store = tmp_path / "a"
    archive_sweep(finished, store)
    config = store / "runs" / "synthetic-mlp-standard-s0" / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "shuffle_labels"}))
    assert verify_archive(store) == 2
    table = store / "results.csv"
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["run_id"] == "synthetic-mlp-standard-s0":
            r["shuffle_labels"] = "True"
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ArchiveError, match="shuffle_labels is True in results.csv but missing from"):
        verify_archive(store)


def test_the_cli_archives_and_exits_2_naming_an_unfinished_run(finished, tmp_path, capsys):
    assert main(["archive", str(finished), str(tmp_path / "a")]) == 0
    assert "2 runs" in capsys.readouterr().out and (tmp_path / "a" / SPEC).is_file()
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    (sweep / "runs" / "synthetic-mlp-standard-s0" / "result.json").unlink()
    assert main(["archive", str(sweep), str(tmp_path / "b")]) == 2
    assert "run synthetic-mlp-standard-s0 is not finished" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_robustness_after_training_at_the_dataset_radii_is_kept_archived_and_tabled(finished, tmp_path):
    from noisemod.attacks import robustness_eps
    from noisemod.rundir import RunDir

    assert robustness_eps("mnist") == (0.1, 0.3) and robustness_eps("fashion-mnist") == (0.05, 0.1)
    assert robustness_eps("cifar10") == pytest.approx((2 / 255, 8 / 255))
    with pytest.raises(ValueError, match="dataset 'imagefolder' declares no robustness radii"):
        robustness_eps("imagefolder")
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY + "robustness: {images: 50, only: {method: [standard]}}\n")
    lines = []
    records = run_sweep(spec, sweep, log=lines.append)  # the finished runs get what the spec now asks
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    run = RunDir(sweep / "runs" / "synthetic-mlp-standard-s0")
    entries = run.read_robustness()
    assert sorted(entries) == sorted(f"pgd-linf-eps{e:g}-n50" for e in robustness_eps("synthetic"))
    assert all(e["robust_attack"]["images"] == 50 and e["robust_attack"]["steps"] == 50 for e in entries.values())
    assert not RunDir(sweep / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0").read_robustness()  # only: standard
    [row] = [r for r in SweepDir(sweep).read_results() if r["run_id"] == run.path.name]
    for eps in robustness_eps("synthetic"):
        assert isinstance(row[f"robust_accuracy_eps{eps:g}"], float)
    archive_sweep(sweep, tmp_path / "a")
    assert (tmp_path / "a" / "runs" / run.path.name / "robustness.json").is_file()
    # the report of the archive tables it per condition, one column per radius (smaller first), "-" where not measured
    from noisemod.analysis.report import report_sections

    header, body = report_sections(tmp_path / "a")["results"]
    radii = [f"robust_accuracy_eps{eps:g}" for eps in sorted(robustness_eps("synthetic"))]
    assert header[-1 - len(radii) : -1] == radii
    [standard] = [r for r in body if r[header.index("method")] == "standard"]
    [nm] = [r for r in body if r[header.index("method")] == "nm"]
    assert standard[header.index(radii[0])] == f"{row[radii[0]]:.4f}" and nm[header.index(radii[0])] == "-"
    lines.clear()
    assert [r["status"] for r in run_sweep(spec, sweep, log=lines.append)] == ["skipped", "skipped"]
    assert not any("start" in line for line in lines)  # nothing left to do


def test_a_spec_asks_for_the_randomization_test_and_the_sweep_adds_it_to_finished_runs(finished, tmp_path):
    """``randomization:`` runs ``evaluate --cascading`` signed and absolute on the runs it names, after
    training; interpretability.json keeps both (archived); a second sweep has nothing left to do."""
    from noisemod.experiments.spec import load_spec
    from noisemod.rundir import RunDir

    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY + "randomization: {images: 20, only: {method: [nm]}}\n")
    lines = []
    assert [r["status"] for r in run_sweep(spec, sweep, log=lines.append)] == ["skipped", "skipped"]
    nm = RunDir(sweep / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0").read_interpretability()
    assert set(nm) == {"gradient/cascading", "gradient/cascading-absolute"}
    for key, absolute in (("gradient/cascading", False), ("gradient/cascading-absolute", True)):
        assert nm[key]["n"] == 20 and nm[key]["absolute"] is absolute
        assert len(nm[key]["layers"]) >= 2  # one entry per re-initialized module, top down
        assert all(-1 <= r <= 1 for _, r in nm[key]["layers"])
    assert not RunDir(sweep / "runs" / "synthetic-mlp-standard-s0").read_interpretability()  # only: nm
    lines.clear()
    assert [r["status"] for r in run_sweep(spec, sweep, log=lines.append)] == ["skipped", "skipped"]
    assert not any("start" in line for line in lines)  # nothing left to do
    archive_sweep(sweep, tmp_path / "a")
    assert (tmp_path / "a" / "runs" / "synthetic-mlp-nm-b0.5-gaussian-s0" / "interpretability.json").is_file()
    for bad, named in (("{images: 0}", "randomization.images"), ("{explainers: [nope]}", "randomization.explainers")):
        spec.write_text(TINY + f"randomization: {bad}\n")
        with pytest.raises(ValueError, match=named):
            load_spec(spec)


def test_a_campaign_whose_spec_changed_under_its_archived_runs_is_refused(finished, tmp_path, capsys):
    """Resuming with --archive after the spec changed a setting of an archived run (or dropped the
    run): exit 2 naming the run and the setting, nothing restored or overwritten."""
    from noisemod.cli import main

    archive_sweep(finished, tmp_path / "results" / "tiny")
    before = {f: (tmp_path / "results" / "tiny" / f).read_bytes() for f in tree(tmp_path / "results" / "tiny")}
    changed = tmp_path / "tiny.yaml"
    changed.write_text(TINY.replace("method: [standard, nm]}", "method: [standard, nm], lr: [0.01]}"))
    argv = ["sweep", str(changed), "--out", str(tmp_path / "new"), "--archive", str(tmp_path / "results" / "tiny")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the spec changed under runs archived in" in err
    assert "synthetic-mlp-standard-s0: lr 0.001 archived, 0.01 in the spec" in err
    assert not (tmp_path / "new").exists()
    changed.write_text(TINY.replace("method: [standard, nm]", "method: [standard]"))
    assert main([*argv[:-4], "--dry-run", *argv[-4:]]) == 2
    assert "synthetic-mlp-nm-b0.5-gaussian-s0: archived, but the spec no longer plans it" in capsys.readouterr().err
    after = {f: (tmp_path / "results" / "tiny" / f).read_bytes() for f in tree(tmp_path / "results" / "tiny")}
    assert after == before


# ----------------------------------------------------------------------------- an archive verifies itself

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (REPO / "results").iterdir() if (p / SweepDir.RESULTS).is_file())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_archive_verifies(folder, capsys):
    runs = sum(1 for p in (folder / SweepDir.RUNS).iterdir() if p.is_dir())
    assert verify_archive(folder) == runs > 0
    assert main(["archive", "--verify", str(folder)]) == 0
    assert capsys.readouterr().out == f"{folder}: verified {runs} runs\n"


def test_a_fresh_archive_verifies(finished, tmp_path):
    archive_sweep(finished, tmp_path / "fresh")
    assert verify_archive(tmp_path / "fresh") == 2


TIER2 = REPO / "results" / "protocol-tier2"


def _vii_plus_half(folder):
    path = folder / SweepDir.RESULTS
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1]["vii"] = repr(float(rows[1]["vii"]) + 0.5)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows[1]["run_id"], "vii is .* in results.csv but .* in .*result.json"


def _corrupt_result(folder):
    run = sorted((folder / SweepDir.RUNS).iterdir())[2]
    (run / "result.json").write_text((run / "result.json").read_text()[:40])
    return run.name, "cannot read its files: .*result.json is not valid JSON"


def _without_interpretability(folder):
    run = next(p for p in sorted((folder / SweepDir.RUNS).iterdir()) if (p / "interpretability.json").is_file())
    (run / "interpretability.json").unlink()
    return run.name, "gradient_\\w+ is .* in results.csv but missing from .*interpretability.json"


TAMPERED_CLAIM = """claims:
  - id: tier2
    title: nm raises VII
    archive: copy
    metric: vii
    direction: higher
    a: {method: nm}
    b: {method: standard}
    by: [dataset, model]
"""


@pytest.mark.parametrize("tamper", [_vii_plus_half, _corrupt_result, _without_interpretability])
def test_a_tampered_archive_does_not_verify_and_claims_and_docs_refuse_it(tamper, tmp_path, capsys):
    copy = tmp_path / "results" / "copy"
    shutil.copytree(TIER2, copy)
    assert verify_archive(copy) == 25
    run_id, problem = tamper(copy)
    message = f"{copy}: run {re.escape(run_id)}: {problem}"
    with pytest.raises(ArchiveError, match=message):
        verify_archive(copy)
    assert main(["archive", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    claims = tmp_path / "claims.yaml"
    claims.write_text(TAMPERED_CLAIM)
    assert main(["claims", str(claims), "--results", str(tmp_path / "results")]) == 2
    assert re.search(f"archive {copy} does not verify: {message}", capsys.readouterr().err)
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated: table copy -->\n<!-- end generated -->\n")
    where = ["--results", str(tmp_path / "results"), "--claims", str(claims)]
    assert main(["docs", str(doc), *where, "--check"]) == 2
    assert re.search(f"archive {copy} does not verify: {message}", capsys.readouterr().err)


def test_runs_and_rows_must_match_one_for_one(finished, tmp_path):
    archive_sweep(finished, tmp_path / "a")
    run = next((tmp_path / "a" / SweepDir.RUNS).iterdir())
    shutil.copytree(run, run.with_name("extra"))
    with pytest.raises(ArchiveError, match="run extra .* has no row in results.csv"):
        verify_archive(tmp_path / "a")
    shutil.rmtree(run.with_name("extra"))
    shutil.rmtree(run)
    with pytest.raises(ArchiveError, match=f"run {run.name} is in results.csv but .* is missing"):
        verify_archive(tmp_path / "a")
    assert main(["archive", "--verify", str(tmp_path / "nowhere")]) == 2
    assert main(["archive", str(finished)]) == 2  # a sweep folder without DEST


def test_the_spec_must_plan_the_archived_runs(finished, tmp_path):
    """archive refuses a sweep whose spec does not plan its runs, and verify an archive whose
    spec.yaml does not; a sweep recorded under the specs' old path finds the bundled spec."""
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep)
    info = json.loads((sweep / SweepDir.SWEEP).read_text())
    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("method: [standard, nm]", "method: [pgd]"))
    (sweep / SweepDir.SWEEP).write_text(json.dumps({**info, "spec_path": str(other)}))
    with pytest.raises(ArchiveError, match=f"its spec {other} does not plan run synthetic-mlp-"):
        archive_sweep(sweep, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    archive_sweep(finished, tmp_path / "a")
    (tmp_path / "a" / SPEC).write_text(other.read_text())
    with pytest.raises(ArchiveError, match="a: its spec .*spec.yaml does not plan run synthetic-mlp-"):
        verify_archive(tmp_path / "a")
    (sweep / SweepDir.SWEEP).write_text(json.dumps({**info, "spec_path": "experiments/tiny.yaml", "cwd": "/nowhere"}))
    with pytest.raises(ArchiveError, match="its spec /nowhere/experiments/tiny.yaml is missing"):
        archive_sweep(sweep, tmp_path / "b")  # not a bundled name either


def test_a_sweep_of_a_bundled_spec_records_its_name_and_its_file(tmp_path, monkeypatch):
    from noisemod.experiments.catalog import bundled_specs
    from noisemod.experiments.plan import plan_sweep
    from noisemod.experiments.runner import _sweep_info
    from noisemod.experiments.spec import load_spec

    monkeypatch.chdir(tmp_path)
    plan = plan_sweep(load_spec(bundled_specs()["fig4"]), "cpu", SweepDir(tmp_path / "s"), None)
    info = _sweep_info(plan, "fig4", "s", 1, None)
    assert info["command"].startswith("noisemod sweep fig4 --out s --budget cpu")
    assert info["spec_path"] == str(bundled_specs()["fig4"]) and Path(info["spec_path"]).is_file()

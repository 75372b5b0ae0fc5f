"""Sweeps: spec expansion and validation, the runner (parallel, skip, resume, failures), the
atomic results table, and the bundled specs."""

import csv
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from noisemod.cli import _config, build_parser
from noisemod.config import TrainConfig
from noisemod.experiments import exit_code, expand, load_spec, run_sweep, task, write_results
from noisemod.experiments.runner import train_command
from noisemod.methods import get_method, list_methods
from noisemod.rundir import RunDir

SPECS = Path(__file__).resolve().parents[1] / "src" / "noisemod" / "experiments" / "specs"

SPEC = """
name: demo
description: two grids, a budget
fixed: {epochs: 1, batch_size: 64}
grids:
  - {dataset: [synthetic], model: [mlp], method: [standard, nm, pgd], beta: [0.5, 1.0]}
  - {dataset: [synthetic, digits], model: [lenet], method: [standard]}
budgets:
  paper: {epochs: 2}
  cpu:
    steps: 2
    cases:
      - {when: {dataset: synthetic}, set: {train_size: 100}}
      - {when: {dataset: synthetic, method: pgd}, set: {alpha: 0.1}}
    datasets: {digits: synthetic}
    only: {method: [standard, pgd]}
"""


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_expansion_union_dedupe_and_budgets(tmp_path):
    spec = load_spec(write(tmp_path, SPEC))
    runs = expand(spec, "paper")
    assert [r.run_id for r in runs] == [
        "synthetic-mlp-standard-s0",
        "synthetic-mlp-nm-b0.5-gaussian-s0",
        "synthetic-mlp-nm-b1-gaussian-s0",
        "synthetic-mlp-pgd-s0",
        "synthetic-lenet-standard-s0",
        "digits-lenet-standard-s0",
    ]
    standard = runs[0].config  # beta does not multiply the standard and pgd runs, and is reset to its default
    assert standard == TrainConfig(dataset="synthetic", model="mlp", epochs=2)
    assert runs[2].config.beta == 1.0 and {r.config.epochs for r in runs} == {2}

    cpu = expand(spec, "cpu")  # nm filtered out; digits replaced by synthetic, which then duplicates a run
    assert [r.run_id for r in cpu] == [
        "synthetic-mlp-standard-s0",
        "synthetic-mlp-pgd-alpha0.1-steps2-s0",
        "synthetic-lenet-standard-s0",
    ]
    assert all(r.config.train_size == 100 and r.config.epochs == 1 for r in cpu)
    assert cpu[0].config.steps is None and cpu[1].config.steps == 2  # steps is pgd's only
    assert cpu[0].config.alpha is None and cpu[1].config.alpha == 0.1


def test_ids_get_a_hash_suffix_only_when_needed(tmp_path):
    spec = load_spec(
        write(tmp_path, "name: x\ngrids: [{dataset: [synthetic], lr: [0.001, 0.01]}]\nbudgets: {paper: {}}\n")
    )
    ids = [r.run_id for r in expand(spec, "paper")]
    assert len(set(ids)) == 2 and all(i.startswith("synthetic-lenet-standard-s0-") for i in ids)
    assert ids == [r.run_id for r in expand(load_spec(spec.path), "paper")]  # stable


@pytest.mark.parametrize(
    "text, where",
    [
        ("name: x\ngrids: [{model: [mlp]}]\nbudget: {}\n", "top level: unknown key(s) budget"),
        ("name: x\ngrids: [{modle: [mlp]}]\n", "grids[0]: unknown TrainConfig field 'modle'"),
        ("name: x\ngrids: [{beta: [0.5, 2]}]\n", "grids[0].beta[1]: invalid beta=2"),
        ("name: x\ngrids: [{beta: 0.5}]\n", "grids[0].beta: expected a non-empty list"),
        ("name: x\ngrids: [{dataset: [mnits]}]\n", "grids[0].dataset[0]: invalid dataset='mnits': expected one of"),
        ("name: x\nfixed: {lr: 1e-3}\ngrids: [{}]\n", "fixed.lr: invalid lr='1e-3'"),
        ("name: x\nfixed: {seed: 0}\ngrids: [{seed: [1]}]\n", "grids[0].seed: also set in 'fixed'"),
        ("name: x\ngrids: [{}]\nbudgets: {cpu: {epoch: 3}}\n", "budgets.cpu: unknown key(s) epoch"),
        (
            "name: x\ngrids: [{}]\nbudgets: {cpu: {cases: [{when: {dataset: mnist}, set: {train_sise: 5}}]}}\n",
            "budgets.cpu.cases[0].set: unknown TrainConfig field 'train_sise'",
        ),
        (
            "name: x\ngrids: [{}]\nbudgets: {cpu: {cases: [{if: {dataset: mnist}}]}}\n",
            "budgets.cpu.cases[0]: unknown key(s) if; valid keys: when, set",
        ),
        (
            "name: x\ngrids: [{}]\nbudgets: {cpu: {only: {model: [vgg]}}}\n",
            "budgets.cpu.only.model[0]: invalid model='vgg'",
        ),
        ("grids: [{}]\n", "missing key 'name'"),
        ("name: x\ngrids: [{model: [mlp}]\n", "not valid YAML"),
    ],
)
def test_validation_errors_name_the_file_the_line_and_the_key(tmp_path, text, where):
    path = write(tmp_path, text, "bad-spec.yaml")
    with pytest.raises(ValueError) as e:
        load_spec(path)
    assert re.match(rf"{re.escape(str(path))}, line \d+(, column \d+)?: ", str(e.value)) and where in str(e.value)


@pytest.mark.parametrize(
    "text, where",
    [
        ("name: x\ngrids:\n  - {model: [mlp]}\n  - {model: [mlp}\n", "line 4, column 17: not valid YAML: "),
        ("name: x\ngrids: [{}]\nbudgets:\n  cpu: 5\n", "line 4: budgets.cpu: expected a mapping, got 5"),
        ("name: x\ngrids:\n  - {model: [mlp]}\n  - {beta: 0.5}\n", "line 4: grids[1].beta: expected a non-empty list"),
    ],
)
def test_a_malformed_spec_exits_2_naming_the_file_and_the_line(tmp_path, capsys, text, where):
    from noisemod.cli import main

    path = write(tmp_path, text, "bad-spec.yaml")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"noisemod: error: {path}, {where}") and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_unknown_budget_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"spec.yaml: budgets: no budget 'gpu'; this spec has: paper, cpu"):
        expand(load_spec(write(tmp_path, SPEC)), "gpu")


def test_train_command_hands_the_run_its_config_file(tmp_path):
    # the runner writes runs/<id>/config.json and the process reads it: no settings as flags
    config = TrainConfig(
        dataset="mnist",
        model="fcnn",
        method="nm",
        beta=0.1,
        noise="laplace",
        modulate_after_norm=True,
        lr=1 / 3,
        train_size=10,
        data_root="/d",
    )
    run = RunDir(tmp_path / "r")
    run.write_config(config)
    cmd = train_command(config, run.path, resume=True)
    assert "--beta" not in cmd and cmd[cmd.index("--config") + 1] == str(run.file(run.CONFIG))
    args = build_parser().parse_args(cmd[3:])
    assert _config(args) == config and args.resume and args.quiet


def test_results_csv_is_written_atomically(tmp_path, monkeypatch):
    path = write_results(tmp_path / "results.csv", [{"run_id": "a", "test_accuracy": 0.5}])
    before = path.read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_results(path, [{"run_id": "a", "test_accuracy": 0.5}, {"run_id": "b", "test_accuracy": 0.6}])
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["results.csv"]


@pytest.mark.slow
def test_sweep_runs_in_parallel_skips_and_resumes(tmp_path, monkeypatch):
    spec = write(
        tmp_path,
        "name: two\ngrids: [{dataset: [synthetic], model: [mlp], method: [standard, nm]}]\n"
        "budgets: {cpu: {epochs: 1, train_size: 200}, other: {epochs: 1}}\n",
    )
    out, lines = tmp_path / "out", []
    runs = run_sweep(spec, out, jobs=2, budget="cpu", log=lines.append)
    ids = ["synthetic-mlp-standard-s0", "synthetic-mlp-nm-b0.5-gaussian-s0"]
    assert [r["status"] for r in runs] == ["completed"] * 2 and exit_code(runs) == 0
    table = rows(out)
    assert [r["run_id"] for r in table] == ids
    assert {r["budget"] for r in table} == {"cpu"} and {r["status"] for r in table} == {"completed"}
    assert {r["method"] for r in table} == {"standard", "nm"} and all(float(r["vii"]) > 0 for r in table)
    assert sum("start" in line for line in lines) == 2 and "[2/2]" in "".join(lines)
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["runs"] == ids and sweep["budget"] == "cpu" and "--budget cpu --jobs 2" in sweep["command"]

    # a rerun starts no process
    def no_process(*args, **kwargs):
        raise AssertionError("a completed run was started again")

    monkeypatch.setattr(task.subprocess, "run", no_process)
    lines.clear()
    assert [r["status"] for r in run_sweep(spec, out, jobs=2, budget="cpu", log=lines.append)] == ["skipped"] * 2
    assert rows(out) == table and not any("start" in line for line in lines)
    monkeypatch.undo()

    # an interrupted run (last.pt, no result.json) is resumed; the table keeps one row per run
    (out / "runs" / ids[1] / "result.json").unlink()
    lines.clear()
    runs = run_sweep(spec, out, jobs=2, budget="cpu", log=lines.append)
    assert [r["status"] for r in runs] == ["skipped", "completed"]
    assert f"start {ids[1]} (resume)" in "\n".join(lines)
    # the resumed run ends with the same metrics; its one-time costs add the second process's
    one_time = ("setup_seconds", "compile_seconds")
    strip = lambda table: [{k: v for k, v in r.items() if k not in one_time} for r in table]  # noqa: E731
    assert strip(rows(out)) == strip(table)
    assert float(rows(out)[1]["setup_seconds"]) > float(table[1]["setup_seconds"])

    with pytest.raises(ValueError, match="holds sweep 'two' with budget 'cpu'"):
        run_sweep(spec, out, budget="other", log=lines.append)

    # a run trained before a setting existed has no such key in config.json: it had the default
    config_path = out / "runs" / ids[1] / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["fused_noise"]
    config_path.write_text(json.dumps(saved))
    monkeypatch.setattr(task.subprocess, "run", no_process)
    assert [r["status"] for r in run_sweep(spec, out, budget="cpu", log=lines.append)] == ["skipped"] * 2
    # but a run trained with another value is refused, naming the setting
    config_path.write_text(json.dumps({**saved, "beta": 0.25}))
    with pytest.raises(ValueError, match="beta=0.25 there, 0.5 in the spec"):
        run_sweep(spec, out, budget="cpu", log=lines.append)


def test_failed_run_is_reported_and_the_sweep_goes_on(tmp_path, monkeypatch):
    spec = write(tmp_path, "name: fails\ngrids: [{dataset: [synthetic], model: [mlp, lenet]}]\nbudgets: {paper: {}}\n")

    def failing_mlp(config, run_dir, resume):  # the mlp run exits 3 after a message; the lenet run succeeds
        if config.model == "mlp":
            return [sys.executable, "-c", "import sys; sys.stderr.write('no luck\\n'); sys.exit(3)"]
        result = json.dumps({"test_accuracy": 0.5, "vii": 0.25})
        return [
            sys.executable,
            "-c",
            f"import pathlib; d = pathlib.Path({str(run_dir)!r}); d.mkdir(parents=True, exist_ok=True); "
            f"(d / 'result.json').write_text({result!r})",
        ]

    monkeypatch.setattr(task, "train_command", failing_mlp)
    out, lines = tmp_path / "out", []
    runs = run_sweep(spec, out, jobs=2, data_root=tmp_path, log=lines.append)
    assert [r["status"] for r in runs] == ["failed", "completed"] and exit_code(runs) == 1
    log = (out / "runs" / "synthetic-mlp-standard-s0" / "error.log").read_text()
    assert log.startswith("exit status 3") and "no luck" in log
    assert [(r["run_id"], r["status"], r["data_root"], r["vii"]) for r in rows(out)] == [
        ("synthetic-mlp-standard-s0", "failed", str(tmp_path), ""),
        ("synthetic-lenet-standard-s0", "completed", str(tmp_path), "0.25"),
    ]
    assert "FAILED: synthetic-mlp-standard-s0" in lines[-1]


def test_a_limited_sweep_works_on_the_first_runs_of_the_spec_and_leaves_the_rest_for_later(tmp_path, monkeypatch):
    grids = "grids: [{dataset: [synthetic], model: [mlp, lenet, fcnn]}]"
    spec = write(tmp_path, f"name: three\n{grids}\nbudgets: {{paper: {{}}}}\n")
    trained = []

    def fake_train(config, run_dir, resume):  # writes the result a finished run leaves
        trained.append(config.model)
        code = f"import pathlib; d = pathlib.Path({str(run_dir)!r}); d.mkdir(parents=True, exist_ok=True); "
        code += f"(d / 'result.json').write_text({json.dumps({'test_accuracy': 0.5, 'vii': 0.25})!r})"
        return [sys.executable, "-c", code]

    monkeypatch.setattr(task, "train_command", fake_train)
    out, lines = tmp_path / "out", []
    ids = ["synthetic-mlp-standard-s0", "synthetic-lenet-standard-s0", "synthetic-fcnn-standard-s0"]
    runs = run_sweep(spec, out, limit=2, dry_run=True, log=lines.append)
    assert "2 to run" in lines[0] and "1 left for later (the first 2 runs only)" in lines[0]
    assert lines[-1] == f"  later  {ids[2]}" and not out.exists()

    lines.clear()
    runs = run_sweep(spec, out, limit=2, log=lines.append)
    assert trained == ["mlp", "lenet"] and [r["status"] for r in runs] == ["completed", "completed", "planned"]
    assert exit_code(runs) == 0 and "1 left for later" in lines[0] and "2 of 3 runs complete" in lines[-1]
    assert [r["run_id"] for r in rows(out)] == ids[:2] and not (out / "runs" / ids[2]).exists()
    # a limit the finished runs already cover leaves nothing to run; without it the sweep goes on
    lines.clear()
    assert [r["status"] for r in run_sweep(spec, out, limit=1, log=lines.append)] == ["skipped", "skipped", "planned"]
    assert "2 complete already, 0 to run, 1 left for later" in lines[0] and trained == ["mlp", "lenet"]
    runs = run_sweep(spec, out, log=lines.append)
    assert trained == ["mlp", "lenet", "fcnn"] and [r["status"] for r in runs] == ["skipped", "skipped", "completed"]
    # a finished run beyond the limit that the spec now asks to measure: left for later, not counted complete
    (out / "runs" / ids[2] / "best.pt").write_bytes(b"weights")  # its measurement needs no retraining
    spec.write_text(spec.read_text() + "robustness: {images: 10, only: {model: [fcnn]}}\n")
    lines.clear()
    assert [r["status"] for r in run_sweep(spec, out, limit=2, log=lines.append)] == ["skipped", "skipped", "planned"]
    assert "1 left for later" in lines[0] and "2 of 3 runs complete" in lines[-1]
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"invalid limit={bad!r}"):
            run_sweep(spec, out, limit=bad, log=lines.append)


def test_dry_run_writes_nothing(tmp_path):
    lines = []
    runs = run_sweep(write(tmp_path, SPEC), tmp_path / "out", budget="cpu", dry_run=True, log=lines.append)
    assert [r["status"] for r in runs] == ["planned"] * 3 and not (tmp_path / "out").exists()
    assert sum("-m noisemod train" in line for line in lines) == 3


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_expand_for_both_budgets(path):
    spec = load_spec(path)
    assert spec.name == path.stem and spec.description
    paper, cpu = expand(spec, "paper"), expand(spec, "cpu")
    for runs in (paper, cpu):
        assert runs and len({r.run_id for r in runs}) == len(runs)
    assert {r.config.epochs for r in paper} == {50} and max(r.config.epochs for r in cpu) < 50
    assert all((c.optimizer, c.lr, c.batch_size) == ("adam", 0.001, 64) for c in (r.config for r in paper))


def test_the_spec_table_of_the_docs_names_every_spec_and_budget_with_its_run_count():
    """docs/experiments.md's table: a row per shipped spec; the paper and cpu columns start with
    those budgets' run counts, and every other budget is named (`name`) with its count before the
    next one is named."""
    table = (SPECS.parents[3] / "docs" / "experiments.md").read_text()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `([\w-]+)\.yaml` \|(.*)$", table, re.M)}
    assert sorted(rows) == sorted(p.stem for p in SPECS.glob("*.yaml"))
    for name, row in rows.items():
        spec = load_spec(SPECS / f"{name}.yaml")
        counts = {b: len(expand(spec, b)) for b in spec.budgets}
        _, paper, cpu, _ = (cell.strip() for cell in row.rsplit("|", 3))
        assert paper.startswith(f"{counts['paper']} runs") and cpu.startswith(f"{counts['cpu']} runs"), name
        named = dict(re.findall(r"`([\w-]+)`: ([^`]*)", paper + " " + cpu))
        assert set(named) == set(counts) - {"paper", "cpu"}, name
        for budget, text in named.items():
            assert str(counts[budget]) in re.findall(r"\d+", text), f"{name} {budget}: {counts[budget]} runs"


def test_shipped_specs_cover_the_paper():
    runs = {
        name: expand(load_spec(SPECS / f"{name}.yaml"), "paper")
        for name in ("fig1", "fig3", "fig4", "fig5", "cost", "norm")
    }
    ids = {name: [r.run_id for r in these] for name, these in runs.items()}
    assert len(ids["fig3"]) == 3 * 3 + 4 * 3
    assert len(ids["fig4"]) == 11 and len(ids["fig5"]) == 6
    assert "cifar10-resnet18-nm-b0.5-gaussian-s0" in ids["fig3"] and "mnist-lenet-pgd-s0" in ids["fig3"]
    assert {r.config.method for r in runs["cost"]} == {
        "standard",
        "nm",
        "additive-noise",
        "multiplicative-noise",
        "fgsm",
        "pgd",
        "igr",
    }
    assert any("after-norm" in i for i in ids["norm"])


def test_runs_that_differ_only_in_a_runtime_setting_are_one_run(tmp_path):
    # the bug: `compile: [true, false]` gave two runs with one id and one directory
    spec = write(tmp_path, "name: x\ngrids: [{dataset: [synthetic], compile: [true, false]}]\nbudgets: {paper: {}}\n")
    with pytest.raises(ValueError, match=r"grids\[0\]\.compile: a runtime setting .* cannot tell runs apart"):
        load_spec(spec)
    # in fixed or a budget it is one value for every run
    ok = write(tmp_path, "name: x\nfixed: {compile: true}\ngrids: [{dataset: [synthetic]}]\nbudgets: {paper: {}}\n")
    assert [r.config.compile for r in expand(load_spec(ok), "paper")] == [True]
    # beta does not tell standard runs apart, so a case on beta would give one run two values
    clash = write(
        tmp_path,
        "name: x\ngrids: [{dataset: [synthetic], method: [standard], beta: [0.5, 0.8]}]\n"
        "budgets: {cpu: {cases: [{when: {beta: 0.8}, set: {compile: true}}]}}\n",
    )
    with pytest.raises(ValueError, match=r"the same run as an earlier one but with other runtime settings \(compile"):
        expand(load_spec(clash), "cpu")


@pytest.mark.parametrize("method", list_methods())
def test_every_method_gets_unique_sweep_ids(tmp_path, method):
    # two values of every setting the method uses, two seeds, and a setting left out of ids (lr)
    variants = {
        "beta": [0.5, 0.8],
        "noise": ["gaussian", "laplace"],
        "modulate_after_norm": [False, True],
        "eps": [0.1, 0.2],
        "alpha": [0.01, 0.02],
        "steps": [2, 3],
        "norm": ["linf", "l2"],
        "igr_lambda": [0.5, 1.0],
    }
    used = {k: v for k, v in variants.items() if k in get_method(method).settings}
    grids = [{"method": [method], "seed": [0, 1], "lr": [0.001, 0.01], **used}]
    if "fused_noise" in get_method(method).settings:  # gaussian noise only
        grids.append({"method": [method], "seed": [0, 1], "fused_noise": [True]})
    text = yaml.safe_dump({"name": "ids", "fixed": {"dataset": "synthetic"}, "grids": grids, "budgets": {"paper": {}}})
    runs = expand(load_spec(write(tmp_path, text)), "paper")
    expected = 2 * 2 * math.prod(len(v) for v in used.values()) + (2 if len(grids) > 1 else 0)
    assert len(runs) == expected and len({r.run_id for r in runs}) == len(runs)
    assert all(f"-{get_method(method).tag or method}-" in r.run_id for r in runs)


def test_a_sweep_rerun_may_change_runtime_settings_only(tmp_path, monkeypatch):
    spec = write(tmp_path, "name: rt\ngrids: [{dataset: [synthetic], model: [mlp]}]\nbudgets: {cpu: {epochs: 1}}\n")
    out = tmp_path / "out"
    run_sweep(spec, out, budget="cpu", log=lambda *_: None)
    config_path = out / "runs" / "synthetic-mlp-standard-s0" / "config.json"
    saved = json.loads(config_path.read_text())
    monkeypatch.setattr(task.subprocess, "run", lambda *a, **k: pytest.fail("a complete run was started"))
    for change in ({"compile": True}, {"channels_last": True}, {"device": "cpu"}, {"data_root": "/elsewhere"}):
        config_path.write_text(json.dumps({**saved, **change}))
        assert [r["status"] for r in run_sweep(spec, out, budget="cpu", log=lambda *_: None)] == ["skipped"]
    config_path.write_text(json.dumps({**saved, "eval_batch_size": 64}))
    with pytest.raises(ValueError, match="eval_batch_size=64 there, 512 in the spec"):
        run_sweep(spec, out, budget="cpu", log=lambda *_: None)


def test_the_protocol_spec_plans_each_tier():
    from noisemod.attacks import attack_defaults

    spec = load_spec(SPECS / "protocol.yaml")
    tiers = {b: expand(spec, b) for b in ("tier1", "tier2", "tier3-fcnn", "tier3-pgd", "paper")}
    assert {b: len(r) for b, r in tiers.items()} == {
        "tier1": 140, "tier2": 25, "tier3-fcnn": 115, "tier3-pgd": 5, "paper": 285
    }  # fmt: skip
    tier1 = [r.config for r in tiers["tier1"]]
    assert {(c.dataset, c.model) for c in tier1} == {
        (d, m) for d in ("mnist", "fashion-mnist") for m in ("mlp", "lenet")
    }
    assert {c.method for c in tier1} == {
        "standard", "nm", "additive-noise", "multiplicative-noise", "gamma-noise", "modulation-only", "fgsm"
    }  # fmt: skip
    assert all(c.epochs == 50 and c.train_size is None and c.seed in range(5) for c in tier1)
    fgsm = {c.dataset: (c.eps, c.early_stop) for c in tier1 if c.method == "fgsm"}
    assert fgsm == {"mnist": (None, True), "fashion-mnist": (0.1, True)}  # None: the dataset's default
    assert attack_defaults("fgsm", "mnist")["eps"] == 0.3
    assert {c.sigma for c in tier1 if c.method == "additive-noise"} == {0.5}
    assert {(c.dataset, c.eps, c.seed) for c in (r.config for r in tiers["tier3-pgd"])} == {
        ("mnist", None, s) for s in range(5)
    }
    fcnn = [r.config for r in tiers["tier3-fcnn"]]
    # the claims' conditions first, the five seeds of each together: Figure 5's three noises, then
    # Figure 4's two betas, then the rest
    first = [(c.dataset, c.method, c.noise, c.beta) for c in fcnn[:25:5]]
    assert first == [("cifar10", "nm", n, b) for n, b in [*(("gaussian", 0.5), ("laplace", 0.5), ("rayleigh", 0.5)),
                                                           *(("gaussian", 0.2), ("gaussian", 0.8))]]  # fmt: skip
    assert all(c.seed == i % 5 for i, c in enumerate(fcnn[:25]))
    assert {c.method for c in fcnn} == {"standard", "nm", "gamma-noise"}
    assert {c.noise for c in fcnn if c.method == "nm"} == {
        "gaussian",
        "laplace",
        "rayleigh",
        "uniform",
        "gamma",
        "exponential",
    }
    assert sorted({c.beta for c in fcnn if c.method == "nm"}) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert all(c.seed in range(5) and c.epochs == 50 and c.train_size is None for c in fcnn)
    cost = [r.config for r in expand(load_spec(SPECS / "cost.yaml"), "cpu-5seeds")]
    assert len(cost) == 105 and {(c.method, c.eps) for c in cost if c.dataset == "fashion-mnist" and c.eps} == {
        ("fgsm", 0.1), ("pgd", 0.1)
    }  # fmt: skip


# ----------------------------------------------------------------------------- the bundled specs


def test_a_bundled_spec_runs_by_name_and_the_list_gives_each_descriptions_first_sentence(tmp_path, monkeypatch, capsys):
    from noisemod.cli import main
    from noisemod.experiments.catalog import bundled_specs

    monkeypatch.chdir(tmp_path)  # no spec file here: the names are the bundled specs'
    assert main(["sweep", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(bundled_specs()) == sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert "controls     Is noise modulation more than noise augmentation?" in lines
    assert main(["sweep", "protocol", "--budget", "tier1", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("sweep protocol (budget tier1): 140 runs, 140 to run") and err == ""
    assert (
        f"{tmp_path}/sweeps/protocol-tier1/runs/mnist-lenet-standard-s0" in out and not (tmp_path / "sweeps").exists()
    )
    assert main(["sweep", "protocol", "--budget", "tier1"]) == 2  # a real run needs --out
    assert "--out" in capsys.readouterr().err


def test_an_unknown_spec_lists_the_bundled_ones_and_a_file_wins_over_a_name(tmp_path, monkeypatch, capsys):
    from noisemod.cli import main
    from noisemod.experiments.catalog import bundled_specs

    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "protcol", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("noisemod: error: invalid SPEC='protcol': no such file") and ", ".join(bundled_specs()) in err
    (tmp_path / "protocol").write_text(SPEC)  # a file named like a bundled spec
    assert main(["sweep", "protocol", "--budget", "paper", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("sweep demo (budget paper)")  # the file's spec, not the bundled one
    assert err == f"noisemod: protocol: the file {tmp_path / 'protocol'}, not the bundled spec of that name\n"
    # the path the specs had before they came with the package still names them
    assert main(["sweep", "experiments/fig3.yaml", "--budget", "cpu", "--dry-run", "--out", "x"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("sweep fig3 (budget cpu)") and "the bundled spec fig3" in err


def test_the_eta_prices_each_run_left_by_the_whole_runs_of_its_kind_not_by_resumed_ones():
    """A resumed run took minutes of a run of an hour: it must not set the pace. Each run not ended
    costs the mean of the runs of its kind that ran whole, less what it has spent, shared among the
    runs at a time."""
    from types import SimpleNamespace

    from noisemod.experiments.runner import _Progress

    def planned(run_id, action):
        return SimpleNamespace(action=action, run=SimpleNamespace(run_id=run_id))

    work = [planned("r1", "resume"), planned("t1", "new"), planned("t2", "new"), planned("t3", "retrain")]
    progress = _Progress(SimpleNamespace(work=work, complete=[]), print, jobs=2)
    start = progress.start
    progress.ended_runs = {1}  # the resumed run ended after 10 s: nothing learnt
    assert progress.eta(start + 10) == pytest.approx(10 * 3)  # no whole run yet: the wall time per ended run
    progress.ended_runs = {1, 2}
    progress.took = {"train": [100.0, 140.0]}  # t1 ran whole in 100 s (and one earlier run in 140 s)
    progress.begun = {3: start + 60}  # t2 under way for 40 s; t3 waits
    assert progress.eta(start + 100) == pytest.approx(((120 - 40) + 120) / 2)
    progress.begun = {3: start - 1000}  # a run past the mean has nothing left, not less than nothing
    assert progress.eta(start + 100) == pytest.approx(120 / 2)
    progress.jobs = 8  # more jobs than runs left: the runs left, not the jobs, divide
    assert progress.eta(start + 100) == pytest.approx(120 / 2)


def test_a_sweep_started_again_takes_its_pace_from_the_finished_runs_trained_whole(tmp_path):
    """The finished runs' timings.json price the runs left from the start; a resumed run's timings
    (its last process only, shorter than its epochs) and a run without timings teach nothing."""
    from types import SimpleNamespace

    from noisemod.experiments.runner import _Progress

    def finished(name, result, timings):
        run = RunDir(tmp_path / name)
        run.path.mkdir()
        (run.path / "result.json").write_text(json.dumps({"test_accuracy": 0.5, "vii": 0.1, **result}))
        if timings is not None:
            (run.path / "timings.json").write_text(json.dumps(timings))
        return SimpleNamespace(dir=run, action="skip", run=SimpleNamespace(run_id=name))

    complete = [
        finished("whole", {"train_seconds": 3000.0}, {"train": 3300.0, "yardsticks": 300.0}),
        finished("resumed", {"train_seconds": 3000.0}, {"train": 400.0, "yardsticks": 300.0}),
        finished("untimed", {"train_seconds": 3000.0}, None),
    ]
    work = [SimpleNamespace(action="new", run=SimpleNamespace(run_id=f"t{i}")) for i in range(4)]
    progress = _Progress(SimpleNamespace(work=work, complete=complete), print, jobs=2)
    assert progress.took == {"train": [3600.0]}
    assert progress.eta(progress.start) == pytest.approx(4 * 3600 / 2)  # before any run of this sweep ends

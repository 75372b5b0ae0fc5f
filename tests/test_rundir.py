"""The run directory and the sweep folder have one owner (noisemod.rundir): it alone names their
files, reads runs and sweeps written before settings left result.json, types the results table,
and names the file when one is broken."""

import ast
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.experiments import run_sweep, task
from noisemod.io import CorruptFileError
from noisemod.rundir import RESULT_FIELDS, RunDir, SweepDir
from noisemod.train import fit

SRC = Path(__file__).resolve().parents[1] / "src" / "noisemod"
SPEC = "name: old\ngrids: [{dataset: [synthetic], model: [mlp], method: [standard, nm]}]\nbudgets: {cpu: {epochs: 1}}\n"
# result.json and results.csv as noisemod wrote them before settings left result.json
OLD_RESULT_SETTINGS = ("method", "model", "dataset", "seed", "beta", "noise", "epochs")


def quiet(*_):
    pass


def test_only_rundir_names_the_files_of_runs_and_sweeps():
    names = {
        *(getattr(RunDir, k) for k in ("CONFIG", "METRICS", "LAST", "BEST", "RESULT", "EVALUATION")),
        *(getattr(RunDir, k) for k in ("ERROR_LOG", "GRADIENTS")),
        *(getattr(SweepDir, k) for k in ("RESULTS", "SWEEP", "REPORT_HTML", "REPORT_MD")),
    }
    alternatives = "|".join(map(re.escape, names))
    pattern = re.compile(rf"(?<![\w.-])({alternatives})(?![\w.])")  # a file name, not part of a longer one
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "rundir.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                offenders += [f"{path.relative_to(SRC)}:{node.lineno}: {m}" for m in pattern.findall(node.value)]
    assert not offenders, offenders


def test_reading_a_finished_run_does_not_import_the_trainer(tmp_path):
    run = tmp_path / "run"
    fit(TrainConfig(dataset="synthetic", model="mlp", epochs=1), run, progress=False, log=quiet)
    code = (
        "import sys, torch\nfrom noisemod.rundir import RunDir\n"
        f"run = RunDir({str(run)!r})\nmodel = run.load_model()\n"
        "print(model(torch.rand(2, 1, 16, 16)).shape, run.read_config().model, sorted(run.read_result())[1])\n"
        "assert 'noisemod.train' not in sys.modules, 'the trainer was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["torch.Size([2,", "10])", "mlp", "best_epoch"]


def make_old_run(run: Path) -> dict:
    """Rewrite a finished run's result.json as before: the settings repeated, train_size and device."""
    result = json.loads((run / "result.json").read_text())
    config = json.loads((run / "config.json").read_text())
    old = {k: v for k, v in result.items() if k not in ("train_images", "train_device")}
    old.update({k: config[k] for k in OLD_RESULT_SETTINGS})
    old.update(train_size=result["train_images"], device=result["train_device"])
    (run / "result.json").write_text(json.dumps(old))
    return result


def make_old_results_csv(sweep: Path) -> None:
    """Rewrite results.csv as before: result.json's scalars, result_ before those named like a setting."""
    rows = []
    for row in SweepDir(sweep).read_results(completed_only=False):
        run = sweep / "runs" / row["run_id"]
        config = json.loads((run / "config.json").read_text())
        result = json.loads((run / "result.json").read_text())
        scalars = {("result_" + k if k in config else k): v for k, v in result.items() if not isinstance(v, dict)}
        rows.append(
            {
                "run_id": row["run_id"],
                "spec": row["spec"],
                "budget": row["budget"],
                "status": row["status"],
                **config,
                **scalars,
            }
        )
    with open(sweep / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_run_written_before_still_loads_evaluates_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    config = TrainConfig(dataset="synthetic", model="mlp", method="nm", epochs=1, train_size=200)
    fit(config, run, progress=False, log=quiet)
    expected = make_old_run(run)
    assert RunDir(run).read_result() == expected  # the results, under today's names, without the settings
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["vii"] == expected["vii"]
    assert main(["explain", str(run), "-n", "3"]) == 0
    capsys.readouterr()
    resumed = fit(config.replace(epochs=2), run, resume=True, progress=False, log=quiet)
    optional = {"robust_accuracy", "robust_attack", "stopped_epoch", "stop_reason"}
    assert set(resumed) == set(RESULT_FIELDS) - optional and RunDir(run).read_result() == resumed


@pytest.fixture(scope="session")
def sweep_once(build_once):
    """SPEC's sweep, run once per session (two training processes); tests get a copy of it."""

    def build(folder):
        (folder / "spec.yaml").write_text(SPEC)
        run_sweep(folder / "spec.yaml", folder / "sweep", budget="cpu", log=quiet)

    return build_once("rundir-sweep", build)


@pytest.fixture
def finished_sweep(sweep_once, tmp_path):
    """A copy of the finished sweep (and its spec.yaml) in this test's tmp_path, free to break."""
    shutil.copy(sweep_once / "spec.yaml", tmp_path / "spec.yaml")
    return Path(shutil.copytree(sweep_once / "sweep", tmp_path / "sweep", symlinks=True))


def test_a_sweep_written_before_still_reports_and_reruns(finished_sweep, tmp_path, monkeypatch):
    spec, out = tmp_path / "spec.yaml", finished_sweep
    new_rows = SweepDir(out).read_results()
    for run in (out / "runs").iterdir():
        make_old_run(run)
    make_old_results_csv(out)
    assert "result_train_size" in (out / "results.csv").read_text().splitlines()[0]
    old_rows = SweepDir(out).read_results()  # typed, under today's names
    assert old_rows == new_rows and old_rows[0]["train_images"] == 540 and old_rows[0]["train_device"] == "cpu"
    assert main(["report", str(out)]) == 0
    assert "train_size (images): 540" in (out / "report.md").read_text()
    # a rerun skips them (no process starts) and writes today's table
    monkeypatch.setattr(task.subprocess, "run", lambda *a, **k: pytest.fail("a complete run was started"))
    assert [r["status"] for r in run_sweep(spec, out, budget="cpu", log=quiet)] == ["skipped", "skipped"]
    assert SweepDir(out).read_results() == new_rows
    assert "result_train_size" not in (out / "results.csv").read_text()


def test_results_are_typed_by_their_descriptions_not_guessed(tmp_path):
    rows = [
        {
            "run_id": "007",
            "spec": "1",
            "budget": "2",
            "status": "completed",
            **TrainConfig(data_root="10").to_dict(),
            "test_accuracy": 0.5,
            "vii": 0.25,
            "best_epoch": 3,
            "git_sha": "1234",
            "extra": "5",
        },
    ]
    SweepDir(tmp_path).write_results(rows)
    [row] = SweepDir(tmp_path).read_results()
    assert (row["run_id"], row["spec"], row["budget"], row["data_root"], row["git_sha"]) == (
        "007",
        "1",
        "2",
        "10",
        "1234",
    )
    assert row["best_epoch"] == 3 and row["vii"] == 0.25 and row["eps"] is None and row["compile"] is False
    assert row["extra"] == "5"  # a column no description covers stays text
    assert "val_accuracy" not in row and row["alpha"] is None  # no such column; an empty cell is None
    assert {k: row[k] for k in rows[0]} == rows[0]  # every value round-trips with its type


@pytest.mark.parametrize(
    "target,content,command",
    [
        ("runs/synthetic-mlp-nm-b0.5-gaussian-s0/result.json", "", "report"),
        ("runs/synthetic-mlp-nm-b0.5-gaussian-s0/result.json", '{"vii": 0.', "report"),
        ("runs/synthetic-mlp-nm-b0.5-gaussian-s0/result.json", "[1, 2]", "report"),
        ("sweep.json", '{"spec": ', "report"),
        ("runs/synthetic-mlp-standard-s0/config.json", '{"beta"', "evaluate"),
        ("runs/synthetic-mlp-standard-s0/config.json", '{"betta": 0.5}', "evaluate"),
        ("runs/synthetic-mlp-standard-s0/best.pt", "truncated", "evaluate"),
    ],
)
def test_a_broken_file_is_an_error_naming_it(finished_sweep, capsys, target, content, command):
    path = finished_sweep / target
    path.write_bytes(content.encode())
    argv = ["report", str(finished_sweep)] if command == "report" else ["evaluate", str(path.parent), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1, err


def test_a_broken_results_table_names_the_file_line_and_column(finished_sweep, capsys):
    path = finished_sweep / "results.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("vii")] = "abc"
    path.write_text("\n".join([lines[0], lines[1], ",".join(cells)]) + "\n")
    with pytest.raises(CorruptFileError, match=r"results.csv, line 3, column vii: could not convert"):
        SweepDir(finished_sweep).read_results()
    path.write_text("\n".join([lines[0], lines[1] + ",x,y"]) + "\n")
    assert main(["report", str(finished_sweep)]) == 1
    assert f"{path}, line 2: more cells than the header has columns" in capsys.readouterr().err

"""Nothing lost: signals write resumable checkpoints, SIGKILL resumes exactly, divergence stops
cleanly, crafted checkpoints are refused without running their code."""

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

import noisemod.training.build as build_module
from noisemod.config import TrainConfig
from noisemod.io import CheckpointError, load_checkpoint
from noisemod.rundir import METRIC_TIMES
from noisemod.train import TrainingInterrupted, fit, load_model

QUICK = TrainConfig(dataset="synthetic", model="lenet", method="nm", epochs=3, batch_size=32)


def quiet(*_):
    pass


def metrics(run):
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in METRIC_TIMES} for row in csv.DictReader(f)]


def patch_steps(monkeypatch, on_call):
    """Make the training method call ``on_call(n, loss)`` at its n-th step (1-based); it may return a new loss."""
    real_build = build_module.build_method
    calls = {"n": 0}

    def build(config, model, generator=None):
        method = real_build(config, model, generator)
        real_step = method.step

        def step(net, x, y):
            loss, logits = real_step(net, x, y)
            calls["n"] += 1
            return on_call(calls["n"], loss), logits

        method.step = step
        return method

    monkeypatch.setattr(build_module, "build_method", build)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_epoch_writes_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, signum):
    full = fit(QUICK, tmp_path / "full", progress=False, log=quiet)

    def send_at_step_20(n, loss):  # 17 steps per epoch: step 3 of epoch 2
        if n == 20:
            os.kill(os.getpid(), signum)
        return loss

    patch_steps(monkeypatch, send_at_step_20)
    with pytest.raises(TrainingInterrupted, match=f"{signal.Signals(signum).name} at step 3 of epoch 2") as e:
        fit(QUICK, tmp_path / "cut", progress=False, log=quiet)
    assert e.value.exit_code == 128 + signum
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt["progress"]["epoch"] == 1 and ckpt["progress"]["partial"]["step"] == 3
    monkeypatch.undo()
    resumed = fit(QUICK, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    assert (resumed["test_accuracy"], resumed["vii"]) == (full["test_accuracy"], full["vii"])


def test_divergence_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    patch_steps(monkeypatch, lambda n, loss: loss * float("nan") if n == 17 + 5 else loss)
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 5; .*last good epoch \(1\)"):
        fit(QUICK, tmp_path / "run", progress=False, log=quiet)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["epoch"] == 1
    assert torch.isfinite(
        torch.cat([v.flatten().float() for v in load_model(tmp_path / "run").state_dict().values()])
    ).all()
    assert not (tmp_path / "run" / "result.json").exists()


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_crafted_checkpoint_is_refused_without_running_its_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    fit(QUICK.replace(epochs=1), run, progress=False, log=quiet)
    good = torch.load(run / "best.pt", weights_only=True)
    torch.save({**good, "payload": RunsCode()}, run / "best.pt")
    with pytest.raises(CheckpointError, match="refusing to load .*best.pt"):
        load_model(run)
    assert not (tmp_path / "pwned").exists()
    (run / "last.pt").write_bytes(pickle.dumps(RunsCode()))
    with pytest.raises(CheckpointError):
        fit(QUICK.replace(epochs=2), run, resume=True, progress=False, log=quiet)
    assert not (tmp_path / "pwned").exists()
    (run / "best.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="best.pt"):
        load_model(run)


def cli_train(out, epochs):
    return [
        sys.executable,
        "-m",
        "noisemod",
        "train",
        "--dataset",
        "digits",
        "--model",
        "lenet",
        "--method",
        "nm",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--quiet",
    ]


def start_and_wait_for_checkpoint(cmd, run):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    return proc


# ~0.4 s an epoch on one core: the signal comes after the first checkpoint, with 14 epochs of room before the end
EPOCHS = 15


@pytest.fixture(scope="session")
def reference_run(build_once):
    """The uninterrupted run, trained once per session; the tests only read it."""

    def build(folder):
        done = subprocess.run(cli_train(folder / "run", EPOCHS), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    return build_once("reliability-reference", build) / "run"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_killed_cli_run_resumes_to_the_uninterrupted_result(tmp_path, reference_run, signum):
    run = tmp_path / "run"
    proc = start_and_wait_for_checkpoint(cli_train(run, EPOCHS), run)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (-signum if signum == signal.SIGKILL else 128 + signum), err
    if signum != signal.SIGKILL:
        assert "continue with --resume" in err
    assert not (run / "result.json").exists()
    resumed = subprocess.run(cli_train(run, EPOCHS) + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(run) == metrics(reference_run)
    a, b = (json.loads((d / "result.json").read_text()) for d in (run, reference_run))
    assert (a["test_accuracy"], a["vii"], a["best_epoch"]) == (b["test_accuracy"], b["vii"], b["best_epoch"])


SWEEP_EPOCHS = 12  # the crash comes in the second run after its first checkpoint: 11 epochs of room
SWEEP_SPEC = f"""name: killtest
fixed: {{dataset: digits, model: lenet, batch_size: 32}}
grids:
  - {{method: [standard, nm], seed: [0, 1]}}
budgets:
  tiny: {{epochs: {SWEEP_EPOCHS}}}
"""


def sweep_rows(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sweep_killed_mid_run_completes_only_the_missing_runs(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SWEEP_SPEC)
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "noisemod", "sweep", str(spec), "--out", str(out), "--budget", "tiny", "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    # wait until one run is complete and the next one has a checkpoint: then crash the whole sweep
    while not (
        sum(1 for _ in out.glob("runs/*/result.json")) >= 1
        and any(not (d / "result.json").exists() for d in out.glob("runs/*") if (d / "last.pt").exists())
    ):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done_before = {
        d.name: (d / "result.json").stat().st_mtime_ns for d in out.glob("runs/*") if (d / "result.json").exists()
    }
    rows_before = sweep_rows(out) if (out / "results.csv").exists() else []
    assert len(rows_before) == len(done_before) and len(done_before) < 4  # the table matches what finished

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rows = sweep_rows(out)
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4 and all(r["status"] == "completed" for r in rows)
    for name, mtime in done_before.items():  # finished runs were not trained again
        assert (out / "runs" / name / "result.json").stat().st_mtime_ns == mtime
    # the interrupted run resumed to exactly the result of an uninterrupted run
    for row in rows:
        ref = fit(
            TrainConfig(
                dataset="digits",
                model="lenet",
                batch_size=32,
                epochs=SWEEP_EPOCHS,
                method=row["method"],
                seed=int(row["seed"]),
            ),
            tmp_path / "ref" / row["run_id"],
            progress=False,
            log=quiet,
        )
        assert float(row["test_accuracy"]) == ref["test_accuracy"] and float(row["vii"]) == pytest.approx(ref["vii"])

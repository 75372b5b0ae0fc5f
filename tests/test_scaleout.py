"""Scale-out: the local executor's GPU round-robin, sweeps on a local Ray instance (same results as
the local executor, a killed worker resumed), bad executors and addresses, TensorBoard event files,
and one-time costs kept apart from training time."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.experiments import executors, run_sweep
from noisemod.experiments.executors import ExecutorError, LocalExecutor, RayExecutor, make_executor
from noisemod.rundir import RunDir
from noisemod.train import Training, build_training, fit, load_data

SPEC = """name: scale
grids: [{dataset: [synthetic], model: [mlp], method: [standard, nm], seed: [0, 1]}]
budgets: {cpu: {epochs: 2, train_size: 128}}
"""


def quiet(*_):
    pass


def rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def numbers(table):
    keep = ("run_id", "status", "test_accuracy", "vii", "val_accuracy", "best_epoch")
    return sorted(tuple(r[k] for k in keep) for r in table)


# ----------------------------------------------------------------------------- one GPU per run


def test_local_executor_gives_each_concurrent_run_its_own_gpu(monkeypatch):
    seen, lock, barrier = [], threading.Lock(), threading.Barrier(2)

    def fake_task(config, run_dir, interp, env):
        barrier.wait(timeout=10)  # two runs at a time, for sure
        with lock:
            seen.append((run_dir, env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"]))
        time.sleep(0.05)
        barrier.wait(timeout=10)
        return True, 0, False

    monkeypatch.setattr(executors, "run_task", fake_task)
    monkeypatch.setattr(executors, "_cores", lambda: 8)
    pool = LocalExecutor(2, gpus=2)
    ended = []
    pool.run([(k, {}, f"run{k}", None) for k in range(4)], lambda k: None, lambda k, *r: ended.append(k))
    assert sorted(ended) == [0, 1, 2, 3] and all(threads == "4" for _, _, threads in seen)
    for first, second in zip(seen[::2], seen[1::2]):  # runs at the same time never share a GPU
        assert {first[1], second[1]} == {"0", "1"}
    assert "CUDA_VISIBLE_DEVICES" not in LocalExecutor(2, gpus=0).slot_env(0, 4)
    assert LocalExecutor(3, gpus=2).slot_env(2, 3)["CUDA_VISIBLE_DEVICES"] == "0"  # round-robin


# ----------------------------------------------------------------------------- bad input


def test_unknown_executor_and_unreachable_address_exit_2_writing_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--budget", "cpu", "--executor", "slurm"]) == 2
    assert "invalid --executor='slurm'" in capsys.readouterr().err
    t0 = time.perf_counter()
    argv = [
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--budget",
        "cpu",
        "--executor",
        "ray",
        "--ray-address",
        "127.0.0.1:9",
    ]
    assert main(argv) == 2
    assert "cannot reach the Ray cluster at '127.0.0.1:9'" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 30 and not out.exists()
    with pytest.raises(ExecutorError, match="--ray-address goes with --executor ray"):
        make_executor("local", 1, ray_address="10.0.0.1:6379")


class FakeRay:
    """Just enough of ``ray`` for RayExecutor.check_folder: tasks run here, and answer ``answer``."""

    def __init__(self, answer):
        self.answer = answer

    def remote(self, **options):
        fake = self

        class Remote:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, folder, name):
                return fake.answer(self.fn, folder, name)

        return Remote

    def get(self, value):
        return value


def test_a_folder_a_worker_cannot_write_is_refused_naming_it(tmp_path):
    pool = RayExecutor.__new__(RayExecutor)
    pool.ray = FakeRay(lambda fn, folder, name: fn(folder, name))
    pool.check_folder(tmp_path)  # a worker that writes where the driver reads: fine, and nothing is left
    assert list(tmp_path.iterdir()) == []
    pool.ray = FakeRay(lambda fn, folder, name: "error: [Errno 30] Read-only file system")
    with pytest.raises(ExecutorError, match=rf"cannot write to the sweep folder {tmp_path} \(error: .*Read-only"):
        pool.check_folder(tmp_path)
    pool.ray = FakeRay(lambda fn, folder, name: "worker-7")  # wrote on its own disk: the driver sees nothing
    with pytest.raises(ExecutorError, match="the file written on node worker-7 is not visible here"):
        pool.check_folder(tmp_path)


# ----------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_gives_the_local_executors_results(tmp_path, local_ray):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    local, on_ray, lines = tmp_path / "local", tmp_path / "ray", []
    run_sweep(spec, local, budget="cpu", jobs=2, log=quiet)
    records = run_sweep(spec, on_ray, budget="cpu", jobs=2, executor="ray", log=lines.append)
    assert [r["status"] for r in records] == ["completed"] * 4
    assert numbers(rows(on_ray)) == numbers(rows(local))
    assert "local Ray instance (2 CPUs, 0 GPUs), 1 CPU(s) per run" in lines[0]
    # a rerun on Ray skips every run
    assert [r["status"] for r in run_sweep(spec, on_ray, budget="cpu", executor="ray", log=quiet)] == ["skipped"] * 4


KILL_SPEC = """name: raykill
fixed: {dataset: digits, model: lenet, batch_size: 32, method: nm}
grids: [{seed: [0, 1]}]
budgets: {tiny: {epochs: 12}}  # the kill comes after the first checkpoint: 11 epochs of room
"""


def _train_processes(out: Path) -> list[tuple[int, int]]:
    """(pid, parent pid) of the `noisemod train` processes writing under ``out``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"train" in cmd and any(str(out).encode() in c for c in cmd):
            found.append((int(proc.name), int(stat[1])))
    return found


@pytest.mark.slow
def test_a_killed_ray_worker_leaves_the_run_resumable_and_it_finishes_the_same(tmp_path):
    pytest.importorskip("ray")
    spec = tmp_path / "spec.yaml"
    spec.write_text(KILL_SPEC)
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_ADDRESS": ""}
    cmd = [
        sys.executable,
        "-m",
        "noisemod",
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--budget",
        "tiny",
        "--jobs",
        "2",
        "--executor",
        "ray",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not any((d / "last.pt").exists() and not (d / "result.json").exists() for d in out.glob("runs/*")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    killed = _train_processes(out)
    assert killed
    os.kill(killed[0][1], signal.SIGKILL)  # the Ray worker running that run; its training child dies with it
    proc.communicate(timeout=600)
    if proc.returncode != 0:  # the task was not retried: a rerun finishes it
        rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    table = rows(out)
    assert len(table) == 2 and {r["status"] for r in table} == {"completed"}  # one row per run, none duplicated
    for row in table:  # the uninterrupted run, as the executor starts it: its own process, one thread
        ref_dir = tmp_path / "ref" / row["run_id"]
        train = [
            sys.executable,
            "-m",
            "noisemod",
            "train",
            "--config",
            str(out / "runs" / row["run_id"] / "config.json"),
        ]
        subprocess.run([*train, "--out", str(ref_dir), "--quiet"], check=True, env={**env, "OMP_NUM_THREADS": "1"})
        ref = json.loads((ref_dir / "result.json").read_text())
        assert float(row["test_accuracy"]) == ref["test_accuracy"] and float(row["vii"]) == pytest.approx(ref["vii"])


# ----------------------------------------------------------------------------- monitoring and timing


def test_tensorboard_event_files_hold_the_curves_and_the_maps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    fit(TrainConfig(dataset="synthetic", model="lenet", epochs=3, batch_size=32), run, progress=False, log=quiet)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "accuracy/train", "accuracy/validation", "vii/validation_batch"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("accuracy/validation")] == [1, 2, 3]
    metrics = RunDir(run).read_metrics()
    assert [e.value for e in events.Scalars("accuracy/validation")] == pytest.approx(
        [m["val_accuracy"] for m in metrics]
    )
    assert [e.value for e in events.Scalars("vii/validation_batch")] == pytest.approx([m["val_vii"] for m in metrics])
    assert [e.step for e in events.Images("input-gradients")] == [1, 3]  # the first and the last epoch
    off = tmp_path / "off"
    fit(TrainConfig(dataset="synthetic", model="lenet", epochs=1, tensorboard=False), off, progress=False, log=quiet)
    assert not (off / "tensorboard").exists()


@pytest.mark.slow
def test_warm_up_compiles_and_changes_nothing():
    config = TrainConfig(dataset="synthetic", model="mlp", method="nm", fused_noise=True)
    data, split = load_data(config)
    training = build_training(config, data, device="cpu")
    x, y = split.images[:32].float() / 255, split.labels[:32]
    weights = {k: v.clone() for k, v in training.model.state_dict().items()}
    rng, noise = torch.get_rng_state(), training.generator.get_state()
    seconds = training.warm_up(x, y)
    assert seconds > 0
    assert all(torch.equal(v, training.model.state_dict()[k]) for k, v in weights.items())
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(training.generator.get_state(), noise)
    assert all(p.grad is None for p in training.model.parameters())


def test_result_json_keeps_one_time_costs_apart(tmp_path, monkeypatch):
    plain = fit(TrainConfig(dataset="synthetic", model="mlp", epochs=1), tmp_path / "a", progress=False, log=quiet)
    assert plain["setup_seconds"] > 0 and plain["compile_seconds"] == 0
    # a compilation that takes an hour (the kernel may already be compiled in this process): the clock jumps
    # by an hour while the model warms up, and the hour is counted in compile_seconds, not in the epoch's
    # train_seconds (no real time is measured: a loaded machine cannot make this fail)
    hour, jumped, clock = 3600.0, [0.0], time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: clock() + jumped[0])
    warm_up = Training.warm_up

    def slow_warm_up(self, x, y):
        seconds = warm_up(self, x, y)
        jumped[0] += hour
        return seconds + hour

    monkeypatch.setattr(Training, "warm_up", slow_warm_up)
    fused = fit(
        TrainConfig(dataset="synthetic", model="mlp", method="nm", fused_noise=True, epochs=1),
        tmp_path / "b",
        progress=False,
        log=quiet,
    )
    assert fused["compile_seconds"] >= hour and fused["train_seconds"] < hour

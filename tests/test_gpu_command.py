"""The prepared GPU command (benchmarks/gpu.py): its dry run walks every step on the CPU, and bad input is
refused before anything is written."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmarks/ is a package of the repository, not of the installed noisemod

from benchmarks import gpu  # noqa: E402


@pytest.mark.slow
def test_the_dry_run_walks_every_step_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "gpu-out"
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--dry-run", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "gpu.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    assert list(steps) == list(gpu.STEPS) and {s["status"] for s in steps.values()} == {"ok"}
    assert all(s["seconds"] <= s["limit_s"] + 30 for s in steps.values())  # each under its own limit
    rows = steps["epoch-ratio"]["result"]["rows"]
    assert {r["path"] for r in rows} == {"default", "bf16 autocast", "channels-last"}
    assert all(r["ratio"] == pytest.approx(r["nm_ms"] / r["standard_ms"]) for r in rows)
    fused = steps["fused-kernel"]["result"]
    assert fused["max_abs_diff_vs_eager"] == 0.0  # the same draw, eagerly
    runs = steps["ray-sweep"]["result"]["runs"]
    assert len(runs) == 2 and {r["train_device"] for r in runs.values()} == {"cpu"}
    protocol = steps["protocol"]["result"]
    assert protocol["standard"]["epochs"] == protocol["nm"]["epochs"] == 1
    assert protocol["nm"]["projected_50_epochs_min"] == pytest.approx(protocol["nm"]["seconds_per_epoch"] * 50 / 60)
    md = (out / "gpu.md").read_text()
    assert "# GPU command (dry run, CPU)" in md and "| ray-sweep | ok |" in md and "| 4 | default |" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_so_exits_2_and_writes_nothing(tmp_path, capsys):
    assert gpu.main(["--out", str(tmp_path / "out")]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_data_root_without_cifar10_is_named_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gpu.main(["--data-root", str(empty), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no cifar10-jpeg.zip under --data-root" in err and str(empty) in err and "--make-data" in err
    assert not (tmp_path / "out").exists()


def test_make_data_keeps_some_training_images_per_class_and_every_test_image(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with zipfile.ZipFile(root / gpu.CIFAR_ZIP, "w") as z:
        for split, per_class in (("train", 5), ("test", 3)):
            for label in ("airplane", "automobile"):
                for i in range(per_class):
                    z.writestr(f"{split}/{label}/{i:04d}.jpg", f"{split}{label}{i}")
    made = gpu.make_data(tmp_path / "carry", root, per_class=2)
    with zipfile.ZipFile(made) as z:
        names = sorted(z.namelist())
    assert [n for n in names if n.startswith("train/")] == [
        "train/airplane/0000.jpg",
        "train/airplane/0001.jpg",
        "train/automobile/0000.jpg",
        "train/automobile/0001.jpg",
    ]
    assert len([n for n in names if n.startswith("test/")]) == 6
    with pytest.raises(gpu.GpuCommandError, match="no cifar10-jpeg.zip under --data-root"):
        gpu.make_data(tmp_path / "carry2", tmp_path / "nowhere")

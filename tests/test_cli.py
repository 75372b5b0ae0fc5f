"""The command line: train -> evaluate -> explain, demo, --help, and bad input (exit 2, one line)."""

import json

import numpy as np
import pytest
from PIL import Image

from noisemod.cli import main

TRAIN = ["train", "--dataset", "synthetic", "--model", "lenet", "--epochs", "2", "--batch-size", "32", "--quiet"]


def test_train_evaluate_explain(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--method", "nm", "--beta", "0.5", "--out", str(run)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"test_accuracy", "vii", "best_epoch", "train_seconds"}

    assert main(["evaluate", str(run), "--robust", "--quiet"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert evaluation["vii"] == pytest.approx(summary["vii"])
    assert 0 <= evaluation["robust_accuracy"] <= evaluation["test_accuracy"]
    assert json.loads((run / "evaluation.json").read_text()) == evaluation

    assert main(["explain", str(run), "-n", "5"]) == 0
    png = run / "gradients.png"
    assert capsys.readouterr().out.strip() == str(png)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 200

    images = []
    for i, value in enumerate((0, 128)):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(path)
        images.append(str(path))
    out = tmp_path / "mine.png"
    assert main(["explain", str(run), *images, "--out", str(out)]) == 0
    assert out.is_file()


def test_explain_rejects_an_image_of_the_wrong_size(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(run)]) == 0
    bad = tmp_path / "big.png"
    Image.fromarray(np.zeros((20, 18), dtype=np.uint8)).save(bad)
    assert main(["explain", str(run), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "big.png" in err and "18x20" in err and "1x16x16" in err


def test_demo_prints_a_table_and_writes_a_png(tmp_path, capsys):
    assert main(["demo", "--dataset", "synthetic", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    header, standard, nm, pgd, note = out.splitlines()[:5]
    assert note.startswith("(one seed: the CPU type") and "docs/RESULTS.md" in note
    assert header.split() == [
        "method",
        "test_accuracy",
        "vii",
        "robust_accuracy",
        "train_seconds",
        "time_vs_standard",
        "best_epoch",
    ]
    assert standard.startswith("standard") and nm.startswith("nm") and pgd.startswith("pgd")
    assert standard.split()[3] == "-" and 0 <= float(pgd.split()[3]) <= 1  # robust accuracy of the PGD model
    assert standard.split()[5] == "1.0x" and pgd.split()[5].endswith("x")
    assert (tmp_path / "synthetic-lenet-gradients.png").is_file()
    config = json.loads((tmp_path / "synthetic-lenet-pgd" / "config.json").read_text())
    assert (config["steps"], config["eps"], config["eps_warmup"]) == (7, 8 / 255, 1.0)
    # a second call reuses the finished runs
    assert main(["demo", "--dataset", "synthetic", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 3


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--beta", "1.5"], "--beta=1.5"),
        (["--beta", "-0.5"], "--beta=-0.5"),
        (["--beta", "abc"], "--beta='abc'"),
        (["--noise", "pink"], "--noise='pink'"),
        (["--model", "nope"], "--model='nope'"),
        (["--dataset", "nope"], "--dataset='nope'"),
        (["--method", "magic"], "--method='magic'"),
        (["--epochs", "0"], "--epochs=0"),
        (["--epochs", "-3"], "--epochs=-3"),
        (["--batch-size", "0"], "--batch-size=0"),
        (["--eps", "-0.1"], "--eps=-0.1"),
        (["--lr", "0"], "--lr=0.0"),
        (["--steps", "0"], "--steps=0"),
        (["--train-size", "0"], "--train-size=0"),
        (["--amp", "fp8"], "--amp='fp8'"),
        (["--device", "tpu"], "--device='tpu'"),
        (["--norm", "l3"], "--norm='l3'"),
        (["--optimizer", "lbfgs"], "--optimizer='lbfgs'"),
        (["--val-size", "-1"], "--val-size=-1"),
        (["--alpha", "0"], "--alpha=0.0"),
        (["--igr-lambda", "-1"], "--igr-lambda=-1.0"),
        (["--momentum", "-0.5"], "--momentum=-0.5"),
        (["--weight-decay", "-1"], "--weight-decay=-1.0"),
        (["--schedule", "linear"], "--schedule='linear'"),
        (["--eval-batch-size", "0"], "--eval-batch-size=0"),
        (["--seed", "-1"], "--seed=-1"),
    ],
)
def test_bad_option_exits_2_with_one_line_before_writing_anything(tmp_path, capsys, argv, needle):
    run = tmp_path / "run"
    assert main([*TRAIN, *argv, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not run.exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["demo", "--epochs", "0"], "--epochs=0"),
        (["demo", "--epochs", "x"], "--epochs='x'"),
        (["explain", "somewhere", "-n", "0"], "--n=0"),
        (["sweep", "fig3", "--out", "x", "--jobs", "0"], "--jobs=0"),
        (["sweep", "fig3", "--out", "x", "--limit", "0"], "--limit=0"),
        (["evaluate", "somewhere", "--device", "tpu"], "--device='tpu'"),
        (["sweep", "fig3", "--out", "x", "--budget", "gpu"], "no budget 'gpu'"),
        (["sweep", "experiments/nope.yaml", "--out", "x"], "SPEC='experiments/nope.yaml': no such file"),
    ],
)
def test_bad_option_of_other_subcommands_exits_2(tmp_path, capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_missing_run_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "not a noisemod run directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "results.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["evaluate"], ["explain"], ["demo"], ["sweep"], ["figures"], ["report"], ["denoiser", "train"]],
)
def test_help_on_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: noisemod" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "noisemod", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("noisemod ")


def test_train_flags_reach_the_config():
    from noisemod.cli import _config, build_parser

    args = build_parser().parse_args(
        [
            "train",
            "--out",
            "x",
            "--method",
            "nm",
            "--compile",
            "--channels-last",
            "--modulate-after-norm",
            "--fused-noise",
        ]
    )
    config = _config(args)
    assert config.compile and config.channels_last and config.modulate_after_norm and config.fused_noise
    plain = _config(build_parser().parse_args(["train", "--out", "x"]))
    assert not (plain.compile or plain.channels_last or plain.modulate_after_norm or plain.fused_noise)


def test_shared_options_are_declared_once_and_help_lists_registry_names(monkeypatch, capsys):
    import noisemod.experiments.executors as executors
    from noisemod.explainers import EXPLAINERS, register_explainer

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping inside names

    def help_text(command):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return capsys.readouterr().out

    for command in ("train", "evaluate", "demo"):
        assert "-q, --quiet no progress bars or per-epoch lines" in " ".join(help_text(command).split())
    assert "-n N, --n N" in help_text("evaluate") and "-n N, --n N" in help_text("explain")
    monkeypatch.setattr(executors, "EXECUTORS", (*executors.EXECUTORS, "toy-cluster"))
    assert "where runs execute: local (default), ray, toy-cluster;" in help_text("sweep")

    @register_explainer("toy-explainer", "the input itself")
    def toy(model, x, y):
        return x

    try:
        assert "logit-sum, toy-explainer\n" in help_text("evaluate")  # --explainer
        assert "logit-sum, toy-explainer\n" in help_text("explain")  # --explainers
    finally:
        EXPLAINERS.unregister("toy-explainer")
    assert "toy-explainer" not in help_text("evaluate") + help_text("explain")


def test_every_noisemod_command_in_the_docs_parses():
    """The command lines in README.md's and docs/'s code blocks use options that exist (a renamed or
    removed option fails here); lines with an elided part (``...``) are left out."""
    import re
    import shlex
    from pathlib import Path

    from noisemod.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    parser, seen = build_parser(), 0
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", page.read_text(), re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith("noisemod ") and "..." not in line:
                    try:
                        parser.parse_args(shlex.split(line)[1:])
                    except SystemExit:
                        pytest.fail(f"{page.relative_to(root)}: {line}")
                    seen += 1
    assert seen >= 20  # the README's usage block alone has more than a dozen

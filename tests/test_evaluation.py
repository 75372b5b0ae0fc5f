"""Evaluating a finished run (noisemod.evaluation.evaluate_run): the one function behind
``noisemod evaluate`` and the sweep's measurements after training."""

import json

import pytest

from noisemod import TrainConfig, fit
from noisemod.cli import build_parser, main
from noisemod.evaluation import evaluate_run
from noisemod.experiments.task import cascade_command, evaluate_command, interpret_command, robust_command
from noisemod.rundir import RunDir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation") / "run"
    config = TrainConfig(dataset="synthetic", model="mlp", epochs=1, batch_size=32)
    fit(config, out, progress=False, log=lambda *_: None)
    return out


def test_evaluate_run_records_what_the_command_prints(run, capsys):
    done = evaluate_run(run, robust=True, eps=0.05, robust_images=20)
    assert done.kind == "evaluation"
    assert json.loads((run / RunDir.EVALUATION).read_text()) == done.values
    assert RunDir(run).has_robustness(0.05, 20)
    assert main(["evaluate", str(run), "--robust", "--eps", "0.05", "--robust-images", "20", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == done.values  # the same function, the same numbers

    scores = evaluate_run(run, metrics=["vii"], n=10)
    assert scores.kind == "interpretability" and set(scores.values) == {"vii"}
    assert RunDir(run).read_interpretability()["gradient"]["scores"] == scores.values

    layers = evaluate_run(run, cascading=True, n=10)
    assert layers.kind == "cascading" and RunDir(run).has_cascading("gradient", absolute=False, n=10)
    saved = RunDir(run).read_interpretability()["gradient/cascading"]["layers"]
    assert [list(layer) for layer in layers.values] == saved


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(absolute=True), "absolute applies to cascading only"),
        (dict(eps=0.1), "invalid eps=0.1: it applies to robust only"),
        (dict(metrics=["vii"], score_sigma=0.5), "invalid score_sigma=0.5"),
        (dict(n=0), "invalid n=0"),
    ],
)
def test_evaluate_run_refuses_arguments_that_do_not_go_together(run, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_run(run, **kwargs)


def test_evaluate_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="not a noisemod run directory"):
        evaluate_run(tmp_path, metrics=["vii"])


@pytest.mark.parametrize(
    "command, options",
    [
        (
            interpret_command("r", "saliency", {"metrics": ["vii", "deletion"], "floor": True, "n": 20}),
            dict(metrics="vii,deletion", explainer="saliency", floor=True, n=20, score_sigma=None),
        ),
        (robust_command("r", 0.1, 1000), dict(robust=True, eps=0.1, robust_images=1000)),
        (cascade_command("r", "gradient", True, 50), dict(cascading=True, explainer="gradient", n=50, absolute=True)),
        (evaluate_command("r", score_sigma=0.25, metrics=["score_alignment"]), dict(score_sigma=0.25)),
    ],
)
def test_a_sweeps_evaluate_process_reads_back_the_arguments_it_was_given(command, options):
    """The task's child processes are ``noisemod evaluate`` with evaluate_run's arguments as options."""
    assert command[1:4] == ["-m", "noisemod", "evaluate"]
    args = build_parser().parse_args(command[3:])
    assert args.run_dir == "r" and args.quiet and args.json
    assert {k: getattr(args, k) for k in options} == options

"""The metrics' validation: a yardstick passes only where it orders the controls as expected
(positive controls above standard above the floor and shuffled labels), by the written rule."""

import itertools
import json

import pytest

from noisemod.analysis.validation import ValidationError, validate, validation_table
from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.rundir import SweepDir

JITTER = [0.0, 0.004, -0.003, 0.002, -0.001]
THRESHOLDS = {"mnist": 0.5}
#: control -> (settings, robust accuracy at its own radius, mean of each yardstick in the order of NAMES:
#: saliency/vii and gradient/vii order the controls, logit-sum/alignment inverts them, saliency/alignment is flat;
#: GOOD: the yardsticks that order them as well as saliency/vii, for the claims' tests)
GOOD = ("gradient/alignment", "gradient/score_alignment@0.25")
NAMES = ("saliency/vii", "logit-sum/alignment", "saliency/alignment", "gradient/deletion", "gradient/vii")
CONTROLS = {
    "standard": ({}, None, (0.30, 0.30, 0.30, 0.40, 0.30)),
    "shuffled": ({"shuffle_labels": True}, None, (0.10, 0.10, 0.10, 0.60, 0.10)),
    "pgd": ({"method": "pgd", "eps": 0.3}, 0.8, (0.60, 0.10, 0.30, 0.20, 0.60)),
    "weak-pgd": ({"method": "pgd", "eps": 0.1}, 0.2, (0.05, 0.90, 0.90, 0.90, 0.05)),
    "noise": ({"method": "additive-noise", "sigma": 0.5}, None, (0.50, 0.20, 0.30, 0.30, 0.50)),
}
FLOOR = (0.05, 0.05, 0.30, 0.55, 0.05)


def toy_archive(root, seeds=5, datasets=("mnist",)):
    sweep = SweepDir(root / "validation")
    for (label, (settings, robust, means)), dataset in itertools.product(CONTROLS.items(), datasets):
        for seed in range(seeds):
            config = TrainConfig(dataset=dataset, model="lenet", seed=seed, **settings)
            run = sweep.run(f"{dataset}-{label}-s{seed}")
            run.path.mkdir(parents=True)
            run.write_config(config)
            run.write_result({"test_accuracy": 0.9, "vii": 0.1, "robust_accuracy": robust})
            values = {k: v + JITTER[seed] for k, v in zip(NAMES, means)}
            values.update({f"{k}_floor": v - JITTER[seed] for k, v in zip(NAMES, FLOOR)})
            values.update({k: values["saliency/vii"] for k in GOOD})
            values.update({f"{k}_floor": values["saliency/vii_floor"] for k in GOOD})
            run.write_yardsticks({"n": 10, "values": values})
    return sweep.path


def test_the_rule_passes_the_yardstick_that_orders_the_controls_and_says_why_the_others_fail(tmp_path):
    v = validate(toy_archive(tmp_path), THRESHOLDS)
    good = v.results[("saliency/vii", "mnist", "lenet")]
    assert good.status == "pass" and good.checks == {"positive": True, "floor": True, "shuffled": True}
    assert v.status("saliency/vii", "mnist") == ("pass", "")
    inverted = v.results[("logit-sum/alignment", "mnist", "lenet")]
    assert inverted.status == "fail" and inverted.failed == ["positive"]
    assert "significantly worse" in inverted.reasons["positive"]
    flat = v.results[("saliency/alignment", "mnist", "lenet")]
    assert flat.failed == ["positive", "floor"]  # the floor scores like standard: not a measure of the model
    status, why = v.status("saliency/alignment", "mnist")
    assert status == "fail" and "positive, floor" in why
    assert v.status("saliency/vii", "cifar10")[0] == "none"


def test_a_non_robust_adversarial_run_is_not_a_positive_control(tmp_path):
    v = validate(toy_archive(tmp_path), THRESHOLDS)
    controls = v.groups[("mnist", "lenet")]
    weak = next(c for c in controls.values() if "eps0.1" in c.label)
    assert weak.runs == [] and len(weak.left_out) == 5 and "robust accuracy 0.200 < 0.5" in weak.left_out[0]
    assert set(v.results[("saliency/vii", "mnist", "lenet")].comparisons) >= {"additive-noise-sigma0.5"}
    with pytest.raises(ValidationError, match="no robust accuracy threshold for dataset 'mnist'"):
        validate(tmp_path / "validation", {})


def test_lower_is_better_reverses_the_order(tmp_path):
    v = validate(toy_archive(tmp_path), THRESHOLDS)
    assert v.results[("gradient/deletion", "mnist", "lenet")].status == "pass"


def test_too_few_seeds_and_an_incomplete_archive(tmp_path):
    v = validate(toy_archive(tmp_path, seeds=2), THRESHOLDS)
    assert v.results[("saliency/vii", "mnist", "lenet")].status == "fail"  # 2 seeds a side judge nothing
    with pytest.raises(ValidationError, match="no validation archive"):
        validate(tmp_path / "nothing", THRESHOLDS)


def test_the_cli_prints_the_table_and_refuses_what_it_cannot_validate(tmp_path, capsys):
    archive = toy_archive(tmp_path)
    claims = tmp_path / "claims.yaml"
    claims.write_text("robust_accuracy: {mnist: 0.5}\nclaims: []\n")
    assert main(["validate", str(archive), "--claims", str(claims)]) == 0
    table = capsys.readouterr().out
    assert "| `saliency/vii` | pass |" in table and "| `logit-sum/alignment` | fail (positive) |" in table
    assert table == validation_table(validate(archive, THRESHOLDS)) + "\n"
    assert main(["validate", str(archive), "--claims", str(claims), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in rows} == {"pass", "fail"}
    assert main(["validate", str(tmp_path / "none"), "--claims", str(claims)]) == 2
    assert "no validation archive" in capsys.readouterr().err
    claims.write_text("robust_accuracy: {mnist: 2}\nclaims: []\n")
    assert main(["validate", str(archive), "--claims", str(claims)]) == 2
    assert "robust_accuracy must map datasets to numbers in [0, 1]" in capsys.readouterr().err
